// @ts-check
/**
 * Ringing sounds synthesised with WebAudio (no audio files to ship): a two-tone
 * ring for incoming calls and a softer ring-back while our call rings out.
 * Browsers only start audio after a user gesture, so `unlockAudio` is wired to
 * the first click or key press.
 */

/** @type {AudioContext|null} */
let ctx = null;

/** The shared AudioContext (also used by the speaking detector). */
export function audioContext() {
  ctx ||= new AudioContext();
  return ctx;
}

/** Call from a user gesture so later rings can sound. */
export function unlockAudio() {
  const c = audioContext();
  if (c.state === 'suspended') c.resume().catch(() => {});
}

/**
 * Play one burst of two mixed tones.
 * @param {AudioContext} c @param {number[]} freqs @param {number} at @param {number} len @param {number} volume
 */
function burst(c, freqs, at, len, volume) {
  const gain = c.createGain();
  gain.gain.setValueAtTime(0, at);
  gain.gain.linearRampToValueAtTime(volume, at + 0.02);
  gain.gain.setValueAtTime(volume, at + len - 0.05);
  gain.gain.linearRampToValueAtTime(0, at + len);
  gain.connect(c.destination);
  for (const f of freqs) {
    const osc = c.createOscillator();
    osc.frequency.value = f;
    osc.connect(gain);
    osc.start(at);
    osc.stop(at + len);
  }
}

/**
 * Start ringing; returns the function that stops it.
 * @param {'incoming'|'outgoing'} kind
 * @returns {() => void}
 */
export function ring(kind) {
  const c = audioContext();
  if (c.state === 'suspended') c.resume().catch(() => {});
  const pattern = kind === 'incoming'
    ? () => {
        const t = c.currentTime + 0.05;
        burst(c, [440, 480], t, 0.4, 0.18);
        burst(c, [440, 480], t + 0.6, 0.4, 0.18);
      }
    : () => burst(c, [425], c.currentTime + 0.05, 1.0, 0.06);
  pattern();
  const timer = setInterval(pattern, kind === 'incoming' ? 2500 : 4000);
  return () => clearInterval(timer);
}
