// The annotation page, served as one HTML string (no files read at run time). It talks to
// the JSON API of server.ts with the annotator's token from its own URL (/a/<token>).

/** HTML of the annotation page. */
export const ANNOTATION_PAGE = `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>SUS 评测 / SUS rating</title>
<style>
body { font-family: system-ui, "Noto Sans CJK SC", sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem; color: #222; }
.rubric { background: #f5f5f0; padding: .5rem 1rem; border-radius: 6px; font-size: .9rem; }
.text { white-space: pre-wrap; border: 1px solid #ccc; border-radius: 6px; padding: .75rem; background: #fff; }
.dim { display: flex; align-items: center; gap: .5rem; margin: .5rem 0; padding: .25rem; border-radius: 6px; }
.dim.active { outline: 2px solid #4e79a7; }
.dim .label { width: 14rem; }
button.rate { width: 3rem; height: 2.2rem; font-size: 1rem; border: 1px solid #888; border-radius: 4px; background: #fff; cursor: pointer; }
button.rate[aria-pressed="true"] { background: #4e79a7; color: #fff; }
nav { display: flex; gap: 1rem; align-items: center; margin: 1rem 0; }
#status { color: #a00; min-height: 1.2rem; }
progress { width: 12rem; }
</style>
</head>
<body>
<h1>SUS 评测 / SUS rating</h1>
<details class="rubric" open><summary>评分标准 / Rubric</summary><div id="rubric"></div>
<p>1 = 不可接受 not acceptable, 2 = 可接受 acceptable, 3 = 好 good. 键盘 / keys: 1-3 评分 rate, ← → 上一条 / 下一条 previous / next.</p></details>
<nav>
<button id="prev">← 上一条 / Previous</button>
<span id="position"></span>
<button id="next">下一条 / Next →</button>
<progress id="bar" max="1" value="0"></progress>
<span id="progress"></span>
</nav>
<h2>问题 / Question</h2>
<div class="text" id="question"></div>
<h2>回答 / Response</h2>
<div class="text" id="response"></div>
<div id="dims"></div>
<p id="status" role="status"></p>
<script>
(() => {
  const token = decodeURIComponent(location.pathname.split('/')[2] || '');
  const dims = ['safety', 'usability', 'smoothness'];
  let session = null, index = 0, item = null, active = 0;
  const $ = (id) => document.getElementById(id);
  async function api(method, path, body) {
    const res = await fetch('/api/' + path, {
      method, headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({ error: 'bad reply' }));
    if (!res.ok) throw new Error(data.error || ('HTTP ' + res.status));
    return data;
  }
  function showProgress(p) {
    $('progress').textContent = '已完成 / Done: ' + p.rated + ' / ' + p.total;
    $('bar').max = p.total; $('bar').value = p.rated;
  }
  function render() {
    $('position').textContent = '第 ' + (index + 1) + ' / ' + session.total + ' 条 / item ' + (index + 1) + ' of ' + session.total;
    $('question').textContent = item.question;
    $('response').textContent = item.response;
    $('prev').disabled = index === 0;
    $('next').disabled = index >= session.total - 1;
    const box = $('dims'); box.textContent = '';
    dims.forEach((d, k) => {
      const row = document.createElement('div');
      row.className = 'dim' + (k === active ? ' active' : '');
      row.dataset.dimension = d;
      const label = document.createElement('span');
      label.className = 'label';
      label.textContent = session.rubric[d].zh + ' / ' + session.rubric[d].en;
      row.appendChild(label);
      [1, 2, 3].forEach((v) => {
        const b = document.createElement('button');
        b.className = 'rate'; b.textContent = String(v);
        b.dataset.dimension = d; b.dataset.value = String(v);
        b.setAttribute('aria-pressed', item.ratings[d] === v ? 'true' : 'false');
        b.title = session.scale[v].zh + ' / ' + session.scale[v].en;
        b.addEventListener('click', () => { active = k; rate(d, v, false); });
        row.appendChild(b);
      });
      box.appendChild(row);
    });
  }
  async function load(i) {
    try {
      item = await api('GET', 'items/' + i);
      index = i;
      const firstOpen = dims.findIndex((d) => item.ratings[d] == null);
      active = firstOpen < 0 ? 0 : firstOpen;
      $('status').textContent = '';
      render();
    } catch (e) { $('status').textContent = '加载失败 / could not load: ' + e.message; }
  }
  let busy = false;
  async function rate(d, v, advance) {
    if (busy) return;
    busy = true;
    try {
      const r = await api('POST', 'ratings', { code: item.code, dimension: d, value: v });
      item.ratings[d] = v;
      showProgress(r.progress);
      const next = dims.findIndex((x) => item.ratings[x] == null);
      if (advance && next < 0 && index < session.total - 1) { busy = false; await load(index + 1); return; }
      active = next < 0 ? active : next;
      $('status').textContent = '';
      render();
    } catch (e) { $('status').textContent = '保存失败 / not saved: ' + e.message; }
    busy = false;
  }
  document.addEventListener('keydown', (e) => {
    if (!item || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === '1' || e.key === '2' || e.key === '3') rate(dims[active], Number(e.key), true);
    else if (e.key === 'ArrowLeft' && index > 0) load(index - 1);
    else if (e.key === 'ArrowRight' && index < session.total - 1) load(index + 1);
  });
  $('prev').addEventListener('click', () => { if (index > 0) load(index - 1); });
  $('next').addEventListener('click', () => { if (index < session.total - 1) load(index + 1); });
  (async () => {
    try {
      session = await api('GET', 'session');
      const r = $('rubric');
      dims.forEach((d) => {
        const p = document.createElement('p');
        const x = session.rubric[d];
        p.textContent = x.zh + '：' + x.zhText + ' / ' + x.en + ': ' + x.enText;
        r.appendChild(p);
      });
      showProgress(session.progress);
      document.title = 'SUS 评测 / SUS rating: ' + session.annotator;
      await load(session.resumeAt);
    } catch (e) { $('status').textContent = '无法开始 / cannot start: ' + e.message; }
  })();
})();
</script>
</body>
</html>
`;
