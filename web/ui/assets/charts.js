// The dashboard's charts: plain SVG drawn from data, in our own small module. No chart library:
// the gateway runs on machines without internet, every byte it serves is compiled in, and the
// pages need three kinds of chart (horizontal bars, bars around a reference, stacked columns),
// which take less code than a library's configuration and carry no third-party licence or
// update cycle. Every chart is an <svg role="img"> with a text alternative and sits next to a
// table holding the same figures, so nothing is shown only as a picture.
const SVG = 'http://www.w3.org/2000/svg';

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

let chartCount = 0;

function figure(caption, svg, legend) {
  const fig = document.createElement('figure');
  fig.className = 'chart';
  const cap = document.createElement('figcaption');
  cap.textContent = caption;
  fig.append(cap, svg);
  if (legend) fig.append(legend);
  return fig;
}

function frame(width, height, label) {
  const id = `chart-${++chartCount}`;
  const svg = el('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, width, height,
                          role: 'img', 'aria-labelledby': `${id}-title` });
  svg.append(el('title', { id: `${id}-title` }, label));
  return svg;
}

/**
 * Horizontal bars, one per row: rows [{label, value (number or null), text, highlight}].
 * `max` the scale's end (default the largest value); `reference` an optional value drawn as a
 * dashed line (e.g. the overall rate) with `referenceLabel`. A null value draws no bar and
 * shows `text` (e.g. "suppressed (<11)").
 */
export function barChart({ caption, label, rows, max, reference, referenceLabel }) {
  const labelWidth = 190, barWidth = 420, rowHeight = 26, top = reference === undefined ? 8 : 26;
  const width = labelWidth + barWidth + 110;
  const height = top + rows.length * rowHeight + 8;
  const svg = frame(width, height, label);
  const values = rows.map((r) => r.value).filter((v) => typeof v === 'number');
  const end = max ?? Math.max(1, ...values, reference ?? 0);
  const x = (v) => labelWidth + (barWidth * Math.max(0, v)) / end;
  rows.forEach((r, i) => {
    const y = top + i * rowHeight;
    svg.append(el('text', { x: labelWidth - 8, y: y + 17, 'text-anchor': 'end' }, r.label));
    if (typeof r.value === 'number') {
      svg.append(el('rect', { class: `bar${r.highlight ? ' highlight' : ''}`, x: labelWidth, y: y + 4,
                              width: Math.max(1, x(r.value) - labelWidth), height: rowHeight - 8 }));
    }
    svg.append(el('text', { x: (typeof r.value === 'number' ? x(r.value) : labelWidth) + 6, y: y + 17 },
                  r.text));
  });
  svg.append(el('line', { class: 'axis', x1: labelWidth, x2: labelWidth, y1: top, y2: height - 8 }));
  if (reference !== undefined) {
    svg.append(el('line', { class: 'reference', x1: x(reference), x2: x(reference), y1: top - 6, y2: height - 8 }));
    svg.append(el('text', { x: x(reference), y: 14, 'text-anchor': 'middle' }, referenceLabel ?? ''));
  }
  return figure(caption, svg);
}

/**
 * Stacked columns over time: columns [{label, values: {series: n}}], `series` [{key, label}]
 * in stacking order. Used for answers per minute by code.
 */
export function stackedColumns({ caption, label, columns, series }) {
  const left = 44, plotWidth = 660, plotHeight = 180, bottom = 28;
  const width = left + plotWidth + 12, height = plotHeight + bottom + 12;
  const svg = frame(width, height, label);
  const totals = columns.map((c) => series.reduce((n, s) => n + (c.values[s.key] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const step = plotWidth / Math.max(1, columns.length);
  const y = (v) => 10 + plotHeight - (plotHeight * v) / max;
  for (const tick of [0, max / 2, max]) {
    const v = Math.round(tick);
    svg.append(el('line', { class: 'grid', x1: left, x2: left + plotWidth, y1: y(v), y2: y(v) }));
    svg.append(el('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
  }
  columns.forEach((c, i) => {
    let base = 0;
    series.forEach((s, k) => {
      const n = c.values[s.key] ?? 0;
      if (n === 0) return;
      svg.append(el('rect', { class: `s${k % 6}`, x: left + i * step + 1, y: y(base + n),
                              width: Math.max(1, step - 2), height: y(base) - y(base + n) }));
      base += n;
    });
    if (i % 10 === 0 || i === columns.length - 1) {
      svg.append(el('text', { x: left + i * step + step / 2, y: height - 8, 'text-anchor': 'middle' }, c.label));
    }
  });
  svg.append(el('line', { class: 'axis', x1: left, x2: left + plotWidth, y1: y(0), y2: y(0) }));
  const legend = document.createElement('ul');
  legend.className = 'legend';
  series.forEach((s, k) => {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = `swatch s${k % 6}`;
    swatch.setAttribute('aria-hidden', 'true');
    item.append(swatch, document.createTextNode(s.label));
    legend.append(item);
  });
  return figure(caption, svg, legend);
}
