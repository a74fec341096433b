// @ts-check
/** Speaking detection from a MediaStream's audio level (WebAudio AnalyserNode). */
import { audioContext } from './ringtone.js';

/**
 * Call `onChange(true/false)` as the stream's audio crosses a speaking threshold.
 * Returns the function that stops watching.
 * @param {MediaStream} stream
 * @param {(speaking: boolean) => void} onChange
 * @returns {() => void}
 */
export function watchSpeaking(stream, onChange) {
  if (!stream.getAudioTracks().length) return () => {};
  const c = audioContext();
  let source;
  try {
    source = c.createMediaStreamSource(stream);
  } catch {
    return () => {};
  }
  const analyser = c.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const buf = new Uint8Array(analyser.fftSize);
  let speaking = false;
  let quietSince = 0;
  const timer = setInterval(() => {
    analyser.getByteTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += (v - 128) * (v - 128);
    const rms = Math.sqrt(sum / buf.length) / 128;
    const now = Date.now();
    if (rms > 0.04) {
      quietSince = 0;
      if (!speaking) onChange((speaking = true));
    } else if (speaking) {
      quietSince ||= now;
      if (now - quietSince > 400) onChange((speaking = false));
    }
  }, 120);
  return () => {
    clearInterval(timer);
    source.disconnect();
  };
}
