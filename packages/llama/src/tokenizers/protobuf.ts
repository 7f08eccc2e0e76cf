// Protocol buffers' wire format, read and written by hand: varints, fixed 32/64-bit fields and
// length-delimited fields, enough for SentencePiece's ModelProto (sentencepiece-model.ts).

/** Wire types of a field's tag (the low 3 bits). */
export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** Reads the fields of one message in `buf[start, end)`; errors say where (`where`, byte offset). */
export class ProtoReader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    readonly view: DataView,
    start: number,
    readonly end: number,
    readonly where: string,
  ) {
    this.pos = start;
  }

  fail(what: string): never {
    throw new Error(`${this.where} at byte ${this.pos}: ${what}`);
  }

  /** A varint as a bigint (up to 64 bits). */
  varintBig(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = this.buf[this.pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    return this.fail('varint longer than 10 bytes');
  }

  /** A varint that fits a JS number exactly (lengths, tags, enums, bools). */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = this.buf[this.pos++] as number;
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    this.pos -= 7;
    const big = this.varintBig();
    return Number(BigInt.asIntN(64, big));
  }

  int32(): number {
    return Number(BigInt.asIntN(32, this.varintBig()));
  }

  float(): number {
    if (this.pos + 4 > this.end) this.fail('truncated float');
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** Bounds [start, end) of a length-delimited field. */
  bytes(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (len < 0 || start + len > this.end) this.fail(`length ${len} runs past the end of the message`);
    this.pos = start + len;
    return [start, start + len];
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varintBig();
    else if (wire === WIRE_I64) this.pos += 8;
    else if (wire === WIRE_LEN) this.bytes();
    else if (wire === WIRE_I32) this.pos += 4;
    else this.fail(`unknown wire type ${wire}`);
    if (this.pos > this.end) this.fail('field runs past the end of the message');
  }

  sub(range: [number, number], where: string): ProtoReader {
    return new ProtoReader(this.buf, this.view, range[0], range[1], where);
  }
}

/** Writes one message's fields in order; `finish` returns its bytes. */
export class ProtoWriter {
  private chunks: number[] = [];

  varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.chunks.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.chunks.push(Number(v));
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(data.length);
    for (const b of data) this.chunks.push(b);
  }

  string(field: number, value: string): void {
    this.bytes(field, new TextEncoder().encode(value));
  }

  float(field: number, value: number): void {
    this.tag(field, WIRE_I32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    for (const x of b) this.chunks.push(x);
  }

  int(field: number, value: number | boolean): void {
    this.tag(field, WIRE_VARINT);
    this.varint(typeof value === 'boolean' ? (value ? 1 : 0) : value);
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}
