// RFC 4180 CSV: quoted fields may hold commas, quotes ("") and line breaks.

/** Formats one CSV field, quoting when needed. */
export function csvField(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Formats rows as CSV with CRLF line ends. */
export function toCsv(rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  return rows.map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}

/**
 * Parses CSV text into records. Returns an error message instead of throwing when a quoted
 * field is not closed, with the record number where it began.
 */
export function parseCsv(text: string): { records: string[][]; error?: { record: number; message: string } } {
  const records: string[][] = [];
  let field = '';
  let record: string[] = [];
  let inQuotes = false;
  let quoteStart = 0;
  let i = 0;
  const s = text.replace(/^\uFEFF/, '');
  while (i < s.length) {
    const ch = s[i]!;
    if (inQuotes) {
      if (ch === '"') {
        if (s[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        inQuotes = false;
      } else field += ch;
      i++;
      continue;
    }
    if (ch === '"' && field === '') {
      inQuotes = true;
      quoteStart = records.length + 1;
    } else if (ch === ',') {
      record.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && s[i + 1] === '\n') i++;
      record.push(field);
      records.push(record);
      record = [];
      field = '';
    } else field += ch;
    i++;
  }
  if (inQuotes) return { records, error: { record: quoteStart, message: 'a quoted field is not closed' } };
  if (field !== '' || record.length > 0) {
    record.push(field);
    records.push(record);
  }
  return { records };
}
