// @ts-check
/**
 * `CallManager` runs 1:1 audio/video calls over the `call:*` events: ringing in
 * both directions, offer/answer/ICE through a `Peer`, `busy` rejection, ring
 * timeout, `media:state` both ways, and clean teardown on hang-up, failure or a
 * lost signaling connection (the server ends our calls when our socket closes).
 * No DOM access: the UI follows `change` and `ended`.
 */
import { Emitter } from '../emitter.js';
import { Peer, IceServers, sdpText, candidateInit } from './peer.js';

/** @typedef {import('../types.js').MediaFlags} MediaFlags */
/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('./media.js').LocalMedia} LocalMedia */

const RING_TIMEOUT_MS = 45_000;
const DISCONNECTED_GRACE_MS = 12_000;

/**
 * @typedef {object} CallState
 * @property {string} callId
 * @property {string} peerId
 * @property {'audio'|'video'} callType
 * @property {'outgoing'|'incoming'} direction
 * @property {'ringing'|'connecting'|'active'} phase
 * @property {number|null} startedAt      epoch ms when media first connected
 * @property {MediaStream|null} remoteStream
 * @property {MediaFlags} remoteMedia
 * @property {MediaFlags} localMedia
 */

/**
 * Why a call ended: `hangup` (we), `ended` (they), `rejected` (they declined),
 * `declined` (we declined), `busy`,
 * `no-answer`, `missed`, `failed`, `connection-lost`, `media-error`.
 * @typedef {{call: CallState, reason: string, message?: string}} CallEnded
 */

/** @typedef {{change: CallState|null, incoming: CallState, ended: CallEnded}} CallEvents */

/** @extends {Emitter<CallEvents>} */
export class CallManager extends Emitter {
  /**
   * @param {Connection} conn
   * @param {IceServers} ice
   * @param {LocalMedia} media
   * @param {() => boolean} busyElsewhere true while a group call is on
   */
  constructor(conn, ice, media, busyElsewhere) {
    super();
    this.conn = conn;
    this.ice = ice;
    this.media = media;
    this.busyElsewhere = busyElsewhere;
    /** @type {CallState|null} */
    this.call = null;
    /** @type {Peer|null} */
    this.peer = null;
    /** @type {string|null} the offer of a ringing incoming call */
    this.pendingOffer = null;
    /** @type {RTCIceCandidateInit[]} candidates that arrive before we accept */
    this.early = [];
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.timer = undefined;

    conn.on('call:offer', (d) => this.#onOffer(d));
    conn.on('call:answer', (d) => this.#mine(d) && this.#onAnswer(d));
    conn.on('call:ice-candidate', (d) => this.#mine(d) && this.#onCandidate(d));
    conn.on('call:reject', (d) => this.#mine(d) && this.#finish(d.reason === 'busy' ? 'busy' : 'rejected', false));
    conn.on('call:end', (d) => this.#mine(d) && this.#finish(this.call?.phase === 'ringing' && this.call.direction === 'incoming' ? 'missed' : 'ended', false));
    conn.on('media:state', (d) => {
      if (this.call && d.callId === this.call.callId) {
        this.call.remoteMedia = { audio: !!d.audio, video: !!d.video, screen: !!d.screen };
        this.#changed();
      }
    });
    conn.on('status', (s) => {
      if (this.call && s.state !== 'open') this.#finish('connection-lost', false);
    });
    media.on('change', (flags) => {
      if (!this.call) return;
      this.call.localMedia = { ...flags };
      this.#changed();
      if (this.call.phase !== 'ringing') this.#sendMediaState();
    });
  }

  get active() {
    return this.call !== null;
  }

  /** @param {any} d @returns {boolean} the event is about our current call */
  #mine(d) {
    return !!this.call && d && d.callId === this.call.callId && d.from === this.call.peerId;
  }

  #changed() {
    this.emit('change', this.call ? { ...this.call } : null);
  }

  /**
   * Call someone. Resolves once ringing; the outcome arrives as events.
   * @param {string} peerId
   * @param {'audio'|'video'} callType
   */
  async start(peerId, callType) {
    if (this.call || this.busyElsewhere()) throw new Error('You are already in a call.');
    const callId = crypto.randomUUID();
    this.call = {
      callId,
      peerId,
      callType,
      direction: 'outgoing',
      phase: 'ringing',
      startedAt: null,
      remoteStream: null,
      remoteMedia: { audio: true, video: callType === 'video', screen: false },
      localMedia: { audio: false, video: false, screen: false },
    };
    this.#changed();
    try {
      await this.media.open({ video: callType === 'video' });
      if (this.call?.callId !== callId) {
        if (!this.call) this.media.close(); // hung up while the camera was opening
        return;
      }
      const peer = await this.#newPeer(callId, peerId);
      await peer.offer();
    } catch (err) {
      if (this.call?.callId === callId) this.#finish('media-error', true, errorText(err));
      return;
    }
    this.timer = setTimeout(() => {
      if (this.call?.callId === callId && this.call.phase === 'ringing') this.#finish('no-answer', true);
    }, RING_TIMEOUT_MS);
  }

  /** Answer the ringing incoming call. */
  async accept() {
    const call = this.call;
    if (!call || call.direction !== 'incoming' || call.phase !== 'ringing' || !this.pendingOffer) return;
    call.phase = 'connecting';
    this.#changed();
    try {
      await this.media.open({ video: call.callType === 'video' });
      if (this.call !== call) {
        if (!this.call) this.media.close();
        return;
      }
      const peer = await this.#newPeer(call.callId, call.peerId);
      for (const c of this.early) await peer.addCandidate(c);
      this.early = [];
      await peer.answer(this.pendingOffer);
      this.pendingOffer = null;
      this.#sendMediaState();
    } catch (err) {
      if (this.call === call) this.#finish('media-error', true, errorText(err));
    }
  }

  /** Decline the ringing incoming call. */
  reject() {
    const call = this.call;
    if (!call || call.direction !== 'incoming' || call.phase !== 'ringing') return;
    this.conn.send('call:reject', { to: call.peerId, callId: call.callId });
    this.#finish('declined', false);
  }

  /** Hang up (or cancel an outgoing ring). */
  hangup() {
    if (this.call) this.#finish('hangup', true);
  }

  /** @param {any} d */
  #onOffer(d) {
    const sdp = sdpText(d && d.sdp);
    if (!d || typeof d.from !== 'string' || typeof d.callId !== 'string' || !sdp) return;
    if (this.call && this.call.callId === d.callId && this.peer) {
      // Renegotiation or ICE restart within the call we are in.
      this.peer.answer(sdp).catch((e) => console.warn('renegotiation failed', e));
      return;
    }
    if (this.call || this.busyElsewhere()) {
      this.conn.send('call:reject', { to: d.from, callId: d.callId, reason: 'busy' });
      return;
    }
    const callType = d.callType === 'video' ? 'video' : 'audio';
    this.pendingOffer = sdp;
    this.early = [];
    this.call = {
      callId: d.callId,
      peerId: d.from,
      callType,
      direction: 'incoming',
      phase: 'ringing',
      startedAt: null,
      remoteStream: null,
      remoteMedia: { audio: true, video: callType === 'video', screen: false },
      localMedia: { audio: false, video: false, screen: false },
    };
    const callId = String(d.callId);
    this.timer = setTimeout(() => {
      if (this.call?.callId === callId && this.call.phase === 'ringing') this.#finish('missed', false);
    }, RING_TIMEOUT_MS + 5000);
    this.#changed();
    this.emit('incoming', { ...this.call });
  }

  /** @param {any} d */
  #onAnswer(d) {
    const sdp = sdpText(d.sdp);
    if (!sdp || !this.peer || !this.call) return;
    clearTimeout(this.timer);
    if (this.call.phase === 'ringing') this.call.phase = 'connecting';
    this.#changed();
    this.peer.accept(sdp).then(
      () => this.#sendMediaState(),
      (e) => this.#finish('failed', true, errorText(e)),
    );
  }

  /** @param {any} d */
  #onCandidate(d) {
    const c = candidateInit(d.candidate);
    if (!c) return;
    if (this.peer) this.peer.addCandidate(c);
    else this.early.push(c);
  }

  /** @param {string} callId @param {string} peerId */
  async #newPeer(callId, peerId) {
    const servers = await this.ice.get();
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    let grace;
    const peer = new Peer(servers, this.media, {
      sdp: (sdp) => {
        const type = peer.pc.localDescription?.type === 'answer' ? 'call:answer' : 'call:offer';
        /** @type {Record<string, unknown>} */
        const data = { to: peerId, callId, sdp };
        if (type === 'call:offer' && this.call) data.callType = this.call.callType;
        this.conn.send(type, data);
      },
      candidate: (candidate) => this.conn.send('call:ice-candidate', { to: peerId, callId, candidate }),
      tracks: () => {
        if (this.call?.callId === callId) {
          this.call.remoteStream = peer.remoteStream;
          this.#changed();
        }
      },
      state: (state) => {
        if (this.call?.callId !== callId) return;
        clearTimeout(grace);
        if (state === 'connected') {
          this.call.phase = 'active';
          if (!this.call.startedAt) this.call.startedAt = Date.now();
          this.#changed();
        } else if (state === 'failed') {
          this.#finish('failed', true);
        } else if (state === 'disconnected') {
          grace = setTimeout(() => {
            if (this.call?.callId === callId && peer.pc.connectionState !== 'connected') this.#finish('failed', true);
          }, DISCONNECTED_GRACE_MS);
        }
      },
    });
    this.peer = peer;
    return peer;
  }

  #sendMediaState() {
    if (!this.call) return;
    this.conn.send('media:state', { callId: this.call.callId, ...this.media.flags });
  }

  /**
   * @param {string} reason
   * @param {boolean} tellPeer send call:end
   * @param {string} [message]
   */
  #finish(reason, tellPeer, message) {
    const call = this.call;
    if (!call) return;
    clearTimeout(this.timer);
    if (tellPeer) this.conn.send('call:end', { to: call.peerId, callId: call.callId });
    if (this.peer) this.peer.close();
    this.peer = null;
    this.pendingOffer = null;
    this.early = [];
    this.call = null;
    this.media.close();
    this.#changed();
    this.emit('ended', { call, reason, message });
  }
}

/** @param {unknown} err */
export function errorText(err) {
  if (err && typeof err === 'object' && 'name' in err) {
    if (err.name === 'NotAllowedError') return 'Access to the microphone or camera was denied.';
    if (err.name === 'NotFoundError') return 'No microphone or camera was found.';
    if (err.name === 'NotReadableError') return 'The microphone or camera is in use by another program.';
  }
  return err instanceof Error ? err.message : String(err);
}
