// @ts-check
/** Inline SVG icons built with createElementNS (24×24, stroke = currentColor). */

const NS = 'http://www.w3.org/2000/svg';

/** @type {Record<string, string[]>} path data per icon */
const PATHS = {
  send: ['M4 12l16-8-6 16-3-7z', 'M11 13l9-9'],
  attach: ['M21 11l-8.5 8.5a5 5 0 01-7-7L14 4a3.5 3.5 0 015 5l-8.5 8.5a2 2 0 01-3-3L15 7'],
  phone: ['M5 4h4l2 5-2.5 1.5a11 11 0 005 5L15 13l5 2v4a2 2 0 01-2 2A16 16 0 013 6a2 2 0 012-2'],
  video: ['M3 7h12v10H3z', 'M15 10l6-3v10l-6-3'],
  hangup: ['M3 15c5-5 13-5 18 0l-2 3-4-2v-2a10 10 0 00-6 0v2l-4 2z'],
  mic: ['M12 3a3 3 0 013 3v6a3 3 0 01-6 0V6a3 3 0 013-3', 'M5 11a7 7 0 0014 0', 'M12 18v3'],
  micOff: ['M12 3a3 3 0 013 3v6a3 3 0 01-6 0V6a3 3 0 013-3', 'M5 11a7 7 0 0014 0', 'M12 18v3', 'M3 3l18 18'],
  cam: ['M3 7h12v10H3z', 'M15 10l6-3v10l-6-3'],
  camOff: ['M3 7h12v10H3z', 'M15 10l6-3v10l-6-3', 'M2 2l20 20'],
  screen: ['M3 4h18v12H3z', 'M8 20h8', 'M12 16v4'],
  settings: ['M12 9a3 3 0 110 6 3 3 0 010-6', 'M12 2v3M12 19v3M2 12h3M19 12h3M5 5l2 2M17 17l2 2M5 19l2-2M17 7l2-2'],
  back: ['M15 5l-7 7 7 7'],
  plus: ['M12 5v14M5 12h14'],
  users: ['M9 11a4 4 0 100-8 4 4 0 000 8', 'M2 21a7 7 0 0114 0', 'M16 3a4 4 0 010 8', 'M18 14a6 6 0 014 7'],
  search: ['M11 4a7 7 0 110 14 7 7 0 010-14', 'M16 16l5 5'],
  logout: ['M15 4h4v16h-4', 'M10 8l-4 4 4 4', 'M6 12h10'],
  close: ['M6 6l12 12M18 6L6 18'],
  bell: ['M6 16V11a6 6 0 0112 0v5l2 2H4z', 'M10 20a2 2 0 004 0'],
  file: ['M6 2h9l5 5v15H6z', 'M14 2v6h6'],
  download: ['M12 4v12', 'M7 11l5 5 5-5', 'M5 20h14'],
  retry: ['M4 12a8 8 0 0114-5l2 2', 'M20 4v5h-5', 'M20 12a8 8 0 01-14 5l-2-2', 'M4 20v-5h5'],
  check: ['M5 12l4 4 10-10'],
  checks: ['M2 12l4 4 10-10', 'M10 16l1 1 10-10'],
  clock: ['M12 3a9 9 0 110 18 9 9 0 010-18', 'M12 7v5l3 2'],
  alert: ['M12 3a9 9 0 110 18 9 9 0 010-18', 'M12 7v6', 'M12 16v1'],
};

/** @typedef {keyof typeof PATHS} IconName */

/** @param {IconName} name @returns {SVGSVGElement} */
export function icon(name) {
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  for (const d of PATHS[name]) {
    const p = document.createElementNS(NS, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}
