// @ts-check
/**
 * `LocalMedia` owns this browser's microphone, camera and screen capture for the
 * one call at a time, and keeps every attached RTCPeerConnection sending the
 * current tracks through `replaceTrack`, so mute, camera, screen share and device
 * changes never need renegotiation. No DOM access.
 */
import { Emitter } from '../emitter.js';

/** @typedef {import('../types.js').MediaFlags} MediaFlags */

/**
 * The transceiver of a kind that carries our media: the first one, by the kind of
 * its receiver track (a sender's track may be null).
 * @param {RTCPeerConnection} pc
 * @param {'audio'|'video'} kind
 */
export function transceiverOf(pc, kind) {
  return pc.getTransceivers().find((t) => t.currentDirection !== 'stopped' && t.receiver.track && t.receiver.track.kind === kind) || null;
}

/**
 * @typedef {object} MediaEvents
 * @property {MediaFlags} change
 */

/** @extends {Emitter<MediaEvents>} */
export class LocalMedia extends Emitter {
  constructor() {
    super();
    /** Microphone and camera tracks; what local previews show. @type {MediaStream} */
    this.stream = new MediaStream();
    /** @type {MediaStreamTrack|null} */
    this.screenTrack = null;
    /** @type {MediaFlags} */
    this.flags = { audio: false, video: false, screen: false };
    /** @type {Set<RTCPeerConnection>} */
    this.pcs = new Set();
    /** @type {{audioinput?: string, videoinput?: string}} */
    this.deviceIds = {};
  }

  get audioTrack() {
    return this.stream.getAudioTracks()[0] || null;
  }
  get cameraTrack() {
    return this.stream.getVideoTracks()[0] || null;
  }
  /** What the video sender should carry now. */
  get outgoingVideo() {
    return this.screenTrack || this.cameraTrack;
  }

  /**
   * Acquire the microphone, and the camera when asked. A missing or refused camera
   * degrades to audio only; a missing microphone is an error the UI shows.
   * @param {{video: boolean}} opts
   */
  async open(opts) {
    this.close();
    const audio = this.deviceIds.audioinput ? { deviceId: { exact: this.deviceIds.audioinput } } : true;
    const video = this.#videoConstraints();
    /** @type {MediaStream} */
    let got;
    try {
      got = await navigator.mediaDevices.getUserMedia({ audio, video: opts.video ? video : false });
    } catch (err) {
      if (!opts.video) throw err;
      got = await navigator.mediaDevices.getUserMedia({ audio, video: false });
    }
    this.stream = got;
    this.flags = { audio: !!this.audioTrack, video: !!this.cameraTrack, screen: false };
    this.emit('change', this.flags);
  }

  /** @returns {MediaTrackConstraints} */
  #videoConstraints() {
    /** @type {MediaTrackConstraints} */
    const c = { width: { ideal: 1280 }, height: { ideal: 720 } };
    if (this.deviceIds.videoinput) c.deviceId = { exact: this.deviceIds.videoinput };
    return c;
  }

  /**
   * Make `pc` send our media. Call before createOffer as the offerer (creates the
   * transceivers) or after setRemoteDescription as the answerer (reuses the offer's).
   * Both kinds are always negotiated, so camera or screen can start later in an
   * audio call with replaceTrack alone.
   * @param {RTCPeerConnection} pc
   */
  attach(pc) {
    this.pcs.add(pc);
    for (const kind of /** @type {const} */ (['audio', 'video'])) {
      const track = kind === 'audio' ? this.audioTrack : this.outgoingVideo;
      const t = transceiverOf(pc, kind);
      if (t) {
        t.direction = 'sendrecv';
        t.sender.replaceTrack(track).catch((e) => console.warn('replaceTrack', e));
      } else {
        pc.addTransceiver(track || kind, { direction: 'sendrecv', streams: [this.stream] });
      }
    }
  }

  /** @param {RTCPeerConnection} pc */
  detach(pc) {
    this.pcs.delete(pc);
  }

  /** @param {'audio'|'video'} kind @param {MediaStreamTrack|null} track */
  async #replaceEverywhere(kind, track) {
    await Promise.all(
      [...this.pcs].map((pc) => {
        const t = transceiverOf(pc, kind);
        return t ? t.sender.replaceTrack(track).catch((e) => console.warn('replaceTrack', e)) : undefined;
      }),
    );
  }

  /** @param {boolean} on */
  setAudio(on) {
    const t = this.audioTrack;
    if (!t) return;
    t.enabled = on;
    this.flags = { ...this.flags, audio: on };
    this.emit('change', this.flags);
  }

  /** Camera on/off; turning it on in an audio-only call acquires the camera. @param {boolean} on */
  async setVideo(on) {
    let t = this.cameraTrack;
    if (on && !t) {
      const got = await navigator.mediaDevices.getUserMedia({ video: this.#videoConstraints() });
      t = got.getVideoTracks()[0];
      this.stream.addTrack(t);
      if (!this.screenTrack) await this.#replaceEverywhere('video', t);
    }
    if (t) t.enabled = on;
    this.flags = { ...this.flags, video: on && !!t };
    this.emit('change', this.flags);
  }

  /** Share a screen in place of the camera; it ends by itself when the browser's "stop" is used. */
  async startScreen() {
    if (this.screenTrack) return;
    const display = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const track = display.getVideoTracks()[0];
    if (!track) throw new Error('No screen was shared.');
    // Keep text sharp: under load the encoder lowers the frame rate instead of the
    // resolution (Chrome's default for camera content is to shrink the picture).
    if ('contentHint' in track) track.contentHint = 'detail';
    this.screenTrack = track;
    track.addEventListener('ended', () => {
      if (this.screenTrack === track) this.stopScreen();
    });
    await this.#replaceEverywhere('video', track);
    this.flags = { ...this.flags, screen: true };
    this.emit('change', this.flags);
  }

  /** Go back to the camera (or to no video). */
  async stopScreen() {
    const track = this.screenTrack;
    if (!track) return;
    this.screenTrack = null;
    await this.#replaceEverywhere('video', this.cameraTrack);
    track.stop();
    this.flags = { ...this.flags, screen: false };
    this.emit('change', this.flags);
  }

  /** @returns {Promise<MediaDeviceInfo[]>} microphones, cameras and speakers */
  async devices() {
    const all = await navigator.mediaDevices.enumerateDevices();
    return all.filter((d) => d.deviceId && ['audioinput', 'videoinput', 'audiooutput'].includes(d.kind));
  }

  /**
   * Switch microphone or camera mid-call, keeping the mute/camera state.
   * @param {'audioinput'|'videoinput'} kind
   * @param {string} deviceId
   */
  async useDevice(kind, deviceId) {
    this.deviceIds[kind] = deviceId;
    const isAudio = kind === 'audioinput';
    const old = isAudio ? this.audioTrack : this.cameraTrack;
    if (!old) return; // takes effect when that kind is next acquired
    const got = await navigator.mediaDevices.getUserMedia(
      isAudio ? { audio: { deviceId: { exact: deviceId } } } : { video: this.#videoConstraints() },
    );
    const track = isAudio ? got.getAudioTracks()[0] : got.getVideoTracks()[0];
    track.enabled = old.enabled;
    this.stream.removeTrack(old);
    this.stream.addTrack(track);
    old.stop();
    if (isAudio) await this.#replaceEverywhere('audio', track);
    else if (!this.screenTrack) await this.#replaceEverywhere('video', track);
    this.emit('change', this.flags);
  }

  /** Stop every capture; the call is over. */
  close() {
    for (const t of this.stream.getTracks()) t.stop();
    if (this.screenTrack) this.screenTrack.stop();
    this.screenTrack = null;
    this.stream = new MediaStream();
    this.pcs.clear();
    this.flags = { audio: false, video: false, screen: false };
  }
}
