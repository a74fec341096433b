// @ts-check
/** Formatting of times, days, sizes and durations for display. */

/** @param {string|number|Date} t */
export function clock(t) {
  return new Date(t).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** Local calendar day, for day separators. @param {string|number|Date} t */
export function dayKey(t) {
  const d = new Date(t);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

/** "Today", "Yesterday" or a date. @param {string|number|Date} t */
export function dayLabel(t) {
  const d = new Date(t);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(d) === dayKey(today)) return 'Today';
  if (dayKey(d) === dayKey(yesterday)) return 'Yesterday';
  const sameYear = d.getFullYear() === today.getFullYear();
  return d.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric', month: 'short', year: sameYear ? undefined : 'numeric' });
}

/** Short time for the conversation list: clock today, else the date. @param {string|number} t */
export function shortWhen(t) {
  const d = new Date(t);
  if (dayKey(d) === dayKey(new Date())) return clock(d);
  return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
}

/** @param {number} bytes */
export function fileSize(bytes) {
  if (bytes < 1024) return bytes + ' B';
  const units = ['KB', 'MB', 'GB'];
  let v = bytes / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return (v < 10 ? v.toFixed(1) : Math.round(v)) + ' ' + units[i];
}

/** mm:ss or h:mm:ss. @param {number} ms */
export function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** "last seen …" for an offline user. @param {string|null} lastSeen */
export function lastSeenText(lastSeen) {
  if (!lastSeen) return 'offline';
  const t = Date.parse(lastSeen);
  if (!Number.isFinite(t)) return 'offline';
  return `last seen ${dayLabel(t).toLowerCase()} at ${clock(t)}`;
}
