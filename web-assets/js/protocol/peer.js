// @ts-check
/**
 * `Peer` wraps one RTCPeerConnection for both 1:1 and mesh calls: it queues ICE
 * candidates that arrive before the remote description, collects remote tracks
 * into one MediaStream, and hands SDP and candidates to a `signal` callback so the
 * call managers decide which wire event carries them. Also the ICE server cache.
 * No DOM access.
 */
import { transceiverOf } from './media.js';

/** @typedef {import('./media.js').LocalMedia} LocalMedia */

/**
 * PROTOCOL.md names the field `sdp`; we send the SDP text and accept either the
 * text or a `{type, sdp}` description from other clients.
 * @param {unknown} value
 * @returns {string|null}
 */
export function sdpText(value) {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && 'sdp' in value && typeof value.sdp === 'string') return value.sdp;
  return null;
}

/**
 * We send `RTCIceCandidate.toJSON()`; a bare candidate string is accepted too.
 * @param {unknown} value
 * @returns {RTCIceCandidateInit|null}
 */
export function candidateInit(value) {
  if (typeof value === 'string') return { candidate: value, sdpMLineIndex: 0 };
  if (value && typeof value === 'object' && 'candidate' in value) return /** @type {RTCIceCandidateInit} */ (value);
  return null;
}

/**
 * @typedef {object} PeerSignal
 * @property {(sdp: string) => void} sdp              send our offer or answer
 * @property {(c: RTCIceCandidateInit) => void} candidate
 * @property {(state: RTCPeerConnectionState) => void} state
 * @property {() => void} tracks                     a remote track was added
 */

export class Peer {
  /**
   * @param {RTCIceServer[]} iceServers
   * @param {LocalMedia} media
   * @param {PeerSignal} signal
   */
  constructor(iceServers, media, signal) {
    this.pc = new RTCPeerConnection({ iceServers });
    this.media = media;
    this.signal = signal;
    this.remoteStream = new MediaStream();
    /** @type {RTCIceCandidateInit[]} */
    this.early = [];
    this.closed = false;
    this.pc.onicecandidate = (e) => {
      if (e.candidate) signal.candidate(e.candidate.toJSON());
    };
    this.pc.ontrack = (e) => {
      if (!this.remoteStream.getTracks().includes(e.track)) this.remoteStream.addTrack(e.track);
      signal.tracks();
    };
    this.pc.onconnectionstatechange = () => {
      // Once connected, every receiving transceiver's track belongs in the remote stream,
      // and the call is told of it again, whether or not a `track` event got through (a
      // CI run showed a connected peer, media decoding, and its tile without a stream).
      if (this.pc.connectionState === 'connected') {
        this.#adoptReceivedTracks();
        if (this.remoteStream.getTracks().length) signal.tracks();
      }
      signal.state(this.pc.connectionState);
    };
  }

  /** Adds the tracks of receiving transceivers that are missing from the remote stream. */
  #adoptReceivedTracks() {
    for (const t of this.pc.getTransceivers()) {
      const receiving = t.currentDirection === 'sendrecv' || t.currentDirection === 'recvonly';
      const track = t.receiver.track;
      if (receiving && track && track.readyState === 'live' && !this.remoteStream.getTracks().includes(track)) {
        this.remoteStream.addTrack(track);
      }
    }
  }

  /** Create and send an offer (also used for ICE restarts). @param {boolean} [iceRestart] */
  async offer(iceRestart = false) {
    if (!transceiverOf(this.pc, 'audio')) this.media.attach(this.pc);
    const offer = await this.pc.createOffer({ iceRestart });
    await this.pc.setLocalDescription(offer);
    this.signal.sdp(/** @type {RTCSessionDescription} */ (this.pc.localDescription).sdp);
  }

  /** Answer an offer (first or renegotiation). @param {string} sdp */
  async answer(sdp) {
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    this.media.attach(this.pc);
    await this.#flushEarly();
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.signal.sdp(/** @type {RTCSessionDescription} */ (this.pc.localDescription).sdp);
  }

  /** @param {string} sdp */
  async accept(sdp) {
    if (this.pc.signalingState !== 'have-local-offer') return; // stale or duplicate answer
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    await this.#flushEarly();
  }

  /** @param {RTCIceCandidateInit} c */
  async addCandidate(c) {
    if (!this.pc.remoteDescription) {
      this.early.push(c);
      return;
    }
    try {
      await this.pc.addIceCandidate(c);
    } catch (e) {
      console.warn('addIceCandidate', e);
    }
  }

  async #flushEarly() {
    const queued = this.early;
    this.early = [];
    for (const c of queued) await this.addCandidate(c);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.media.detach(this.pc);
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }
}

/** Caches GET /api/ice-servers for most of its TTL (TURN credentials are short-lived). */
export class IceServers {
  /** @param {import('./rest.js').Rest} rest */
  constructor(rest) {
    this.rest = rest;
    /** @type {{servers: RTCIceServer[], until: number}|null} */
    this.cached = null;
  }

  /** @returns {Promise<RTCIceServer[]>} */
  async get() {
    if (this.cached && Date.now() < this.cached.until) return this.cached.servers;
    try {
      const res = await this.rest.iceServers();
      const ttl = Math.max(0, Number(res.ttl) || 0);
      this.cached = { servers: res.iceServers || [], until: Date.now() + ttl * 800 };
      return this.cached.servers;
    } catch (err) {
      // Host candidates still work on a flat LAN; a call without TURN beats no call.
      console.warn('ice-servers unavailable', err);
      return [];
    }
  }
}
