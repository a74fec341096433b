// @ts-check
/**
 * `GroupCallManager` runs mesh group calls: `group-call:join` answers with the
 * peers already in the call and the newcomer offers each of them; everyone else
 * only answers, so offers never collide. One `Peer` per participant, `media:state`
 * per participant, and teardown on leave, `peer-left` or a lost connection.
 * No DOM access: the UI follows `change` and `ended`.
 */
import { Emitter } from '../emitter.js';
import { Peer, IceServers, sdpText, candidateInit } from './peer.js';
import { errorText } from './calls.js';

/** @typedef {import('../types.js').MediaFlags} MediaFlags */
/** @typedef {import('../protocol.js').Connection} Connection */
/** @typedef {import('./media.js').LocalMedia} LocalMedia */

/** Mesh limit from PROTOCOL.md; the server enforces it with `call_full`. */
export const MAX_PARTICIPANTS = 6;

/**
 * @typedef {object} Participant
 * @property {string} userId
 * @property {MediaStream|null} stream
 * @property {MediaFlags} media
 * @property {RTCPeerConnectionState|'new'} state
 */

/**
 * @typedef {object} GroupCallState
 * @property {string} groupId
 * @property {'joining'|'active'} phase
 * @property {number} startedAt
 * @property {Participant[]} participants   the others, in join order
 * @property {MediaFlags} localMedia
 */

/** @typedef {{groupId: string, reason: string, message?: string}} GroupCallEnded */
/** @typedef {{change: GroupCallState|null, ended: GroupCallEnded}} GroupCallEvents */

/** @extends {Emitter<GroupCallEvents>} */
export class GroupCallManager extends Emitter {
  /**
   * @param {Connection} conn
   * @param {IceServers} ice
   * @param {LocalMedia} media
   * @param {() => boolean} busyElsewhere true while a 1:1 call is on
   */
  constructor(conn, ice, media, busyElsewhere) {
    super();
    this.conn = conn;
    this.ice = ice;
    this.media = media;
    this.busyElsewhere = busyElsewhere;
    /** @type {string|null} */
    this.groupId = null;
    /** @type {'joining'|'active'} */
    this.phase = 'joining';
    this.startedAt = 0;
    /** @type {Map<string, {p: Participant, peer: Peer|null, early: RTCIceCandidateInit[]}>} */
    this.peers = new Map();
    /**
     * Media flags announced by people we have no entry for yet (their `media:state` can
     * overtake what tells us they are in the call); taken when the entry is made.
     * @type {Map<string, MediaFlags>}
     */
    this.earlyMedia = new Map();

    conn.on('group-call:existing-peers', (d) => this.#ours(d) && this.#offerTo(d.peers));
    conn.on('group-call:peer-joined', (d) => {
      if (!this.#ours(d)) return;
      this.#entry(d.userId);
      // The newcomer knows nothing of our camera and microphone yet.
      this.#sendMediaState();
    });
    conn.on('group-call:peer-left', (d) => this.#ours(d) && this.#drop(d.userId));
    conn.on('group-call:offer', (d) => this.#ours(d) && this.#onOffer(d));
    conn.on('group-call:answer', (d) => this.#ours(d) && this.#onAnswer(d));
    conn.on('group-call:ice-candidate', (d) => this.#ours(d) && this.#onCandidate(d));
    conn.on('media:state', (d) => {
      if (!this.#ours(d) || typeof d.from !== 'string') return;
      const flags = { audio: !!d.audio, video: !!d.video, screen: !!d.screen };
      const e = this.peers.get(d.from);
      if (!e) {
        this.earlyMedia.set(d.from, flags);
        return;
      }
      e.p.media = flags;
      this.#changed();
    });
    conn.on('status', (s) => {
      if (this.groupId && s.state !== 'open') this.#finish('connection-lost', false);
    });
    media.on('change', () => {
      if (!this.groupId) return;
      this.#changed();
      this.#sendMediaState();
    });
  }

  get active() {
    return this.groupId !== null;
  }

  /** @param {any} d */
  #ours(d) {
    return !!this.groupId && d && d.groupId === this.groupId;
  }

  /** @returns {GroupCallState|null} */
  get state() {
    if (!this.groupId) return null;
    return {
      groupId: this.groupId,
      phase: this.phase,
      startedAt: this.startedAt,
      participants: [...this.peers.values()].map((e) => ({ ...e.p })),
      localMedia: { ...this.media.flags },
    };
  }

  #changed() {
    this.emit('change', this.state);
  }

  /**
   * Join the group's call (starting it when nobody is in it).
   * @param {string} groupId
   * @param {{video: boolean}} opts
   */
  async join(groupId, opts) {
    if (this.groupId || this.busyElsewhere()) throw new Error('You are already in a call.');
    this.groupId = groupId;
    this.phase = 'joining';
    this.startedAt = Date.now();
    this.#changed();
    try {
      await this.media.open(opts);
      if (this.groupId !== groupId) {
        if (!this.groupId && !this.busyElsewhere()) this.media.close(); // left while the camera opened
        return;
      }
      const ack = await this.conn.request('group-call:join', { groupId });
      if (this.groupId !== groupId) return;
      this.phase = 'active';
      this.#changed();
      this.#sendMediaState();
      await this.#offerTo(ack.peers || []);
    } catch (err) {
      if (this.groupId !== groupId) return;
      const full = !!err && typeof err === 'object' && 'code' in err && err.code === 'call_full';
      this.#finish(full ? 'full' : 'failed', false, full ? `The call is full (${MAX_PARTICIPANTS} people).` : errorText(err));
    }
  }

  /** Leave the call. */
  leave() {
    if (this.groupId) this.#finish('hangup', true);
  }

  /** @param {string} userId */
  #entry(userId) {
    let e = this.peers.get(userId);
    if (!e) {
      const media = this.earlyMedia.get(userId) ?? { audio: true, video: false, screen: false };
      this.earlyMedia.delete(userId);
      e = { p: { userId, stream: null, media, state: 'new' }, peer: null, early: [] };
      this.peers.set(userId, e);
      this.#changed();
    }
    return e;
  }

  /** We are the newcomer: offer everyone already there (once each). @param {unknown} peers */
  async #offerTo(peers) {
    if (!Array.isArray(peers)) return;
    const me = this.conn.user?.id;
    for (const userId of peers) {
      if (typeof userId !== 'string' || userId === me) continue;
      const e = this.#entry(userId);
      if (e.peer) continue;
      try {
        const peer = await this.#newPeer(userId);
        await peer.offer();
      } catch (err) {
        console.warn('offer to', userId, 'failed', err);
      }
    }
  }

  /** @param {any} d */
  async #onOffer(d) {
    const sdp = sdpText(d.sdp);
    if (!sdp || typeof d.from !== 'string') return;
    const e = this.#entry(d.from);
    try {
      const peer = e.peer || (await this.#newPeer(d.from));
      await peer.answer(sdp);
    } catch (err) {
      console.warn('answer to', d.from, 'failed', err);
    }
  }

  /** @param {any} d */
  #onAnswer(d) {
    const sdp = sdpText(d.sdp);
    const e = typeof d.from === 'string' ? this.peers.get(d.from) : undefined;
    if (sdp && e && e.peer) e.peer.accept(sdp).catch((err) => console.warn('answer from', d.from, err));
  }

  /** @param {any} d */
  #onCandidate(d) {
    const c = candidateInit(d.candidate);
    if (!c || typeof d.from !== 'string') return;
    const e = this.#entry(d.from);
    if (e.peer) e.peer.addCandidate(c);
    else e.early.push(c);
  }

  /** @param {string} userId */
  async #newPeer(userId) {
    const groupId = /** @type {string} */ (this.groupId);
    const servers = await this.ice.get();
    const e = this.#entry(userId);
    if (e.peer) return e.peer;
    const peer = new Peer(servers, this.media, {
      sdp: (sdp) => {
        const type = peer.pc.localDescription?.type === 'answer' ? 'group-call:answer' : 'group-call:offer';
        this.conn.send(type, { groupId, to: userId, sdp });
      },
      candidate: (candidate) => this.conn.send('group-call:ice-candidate', { groupId, to: userId, candidate }),
      tracks: () => {
        e.p.stream = peer.remoteStream;
        this.#changed();
      },
      state: (state) => {
        e.p.state = state;
        this.#changed();
        if (state === 'connected') this.#sendMediaState();
      },
    });
    e.peer = peer;
    for (const c of e.early) peer.addCandidate(c);
    e.early = [];
    return peer;
  }

  /** @param {string} userId */
  #drop(userId) {
    const e = this.peers.get(userId);
    if (!e) return;
    if (e.peer) e.peer.close();
    this.peers.delete(userId);
    this.#changed();
  }

  #sendMediaState() {
    if (this.groupId && this.phase === 'active') this.conn.send('media:state', { groupId: this.groupId, ...this.media.flags });
  }

  /** @param {string} reason @param {boolean} tellServer @param {string} [message] */
  #finish(reason, tellServer, message) {
    const groupId = this.groupId;
    if (!groupId) return;
    if (tellServer) this.conn.send('group-call:leave', { groupId });
    for (const e of this.peers.values()) if (e.peer) e.peer.close();
    this.peers.clear();
    this.earlyMedia.clear();
    this.groupId = null;
    this.media.close();
    this.#changed();
    this.emit('ended', { groupId, reason, message });
  }
}
