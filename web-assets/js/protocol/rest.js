// @ts-check
/**
 * The REST half of PROTOCOL.md: one `Rest` object that adds the bearer token,
 * turns `{"error":{"code","message"}}` bodies into `ApiError`s, and names every
 * endpoint the UI uses so paths live in one place. No DOM access.
 */

/** @typedef {import('../types.js').User} User */
/** @typedef {import('../types.js').Message} Message */
/** @typedef {import('../types.js').Group} Group */
/** @typedef {import('../types.js').FileInfo} FileInfo */

/** An HTTP or transport failure with the server's error code (or a local one). */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the request never completed
   * @param {string} code   server code, or `network` / `aborted` / `bad_response`
   * @param {string} message
   * @param {number} [retryAfter] seconds, from a 429's Retry-After
   */
  constructor(status, code, message, retryAfter) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * Read an error body, falling back to the status text when it is not ours.
 * @param {number} status
 * @param {string} text
 * @param {string|null} retryAfter
 */
function errorFrom(status, text, retryAfter) {
  let code = 'http_' + status;
  let message = `Request failed (${status})`;
  try {
    const body = JSON.parse(text);
    if (body && body.error && typeof body.error.code === 'string') {
      code = body.error.code;
      message = String(body.error.message || message);
    }
  } catch {
    /* not JSON: keep the generic message */
  }
  const secs = retryAfter ? Number(retryAfter) : NaN;
  return new ApiError(status, code, message, Number.isFinite(secs) ? secs : undefined);
}

/** @typedef {{promise: Promise<FileInfo>, abort: () => void}} Upload */

export class Rest {
  /**
   * @param {() => string|null} getToken
   * @param {(err: ApiError) => void} [onUnauthorized] called on any 401 from an authenticated call
   */
  constructor(getToken, onUnauthorized) {
    this.getToken = getToken;
    this.onUnauthorized = onUnauthorized || (() => {});
  }

  /** @returns {Record<string, string>} */
  #authHeaders() {
    const token = this.getToken();
    return token ? { Authorization: 'Bearer ' + token } : {};
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @returns {Promise<any>} parsed JSON, or null for 204
   */
  async request(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json', ...this.#authHeaders() };
    /** @type {RequestInit} */
    const init = { method, headers, credentials: 'same-origin' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection.');
    }
    const text = await res.text();
    if (!res.ok) {
      const err = errorFrom(res.status, text, res.headers.get('Retry-After'));
      if (res.status === 401 && headers.Authorization) this.onUnauthorized(err);
      throw err;
    }
    if (res.status === 204 || text === '') return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError(res.status, 'bad_response', 'The server sent an unreadable answer.');
    }
  }

  // --- auth -------------------------------------------------------------
  /** @param {string} username @param {string} password @returns {Promise<{token: string, user: User}>} */
  login(username, password) {
    return this.request('POST', '/api/auth/login', { username, password });
  }
  /** @param {string} username @param {string} password @param {string} [displayName] @returns {Promise<{token: string, user: User}>} */
  signup(username, password, displayName) {
    /** @type {Record<string, string>} */
    const body = { username, password };
    if (displayName) body.displayName = displayName;
    return this.request('POST', '/api/auth/signup', body);
  }
  logout() {
    return this.request('POST', '/api/auth/logout');
  }
  /** @returns {Promise<User>} */
  async me() {
    return (await this.request('GET', '/api/auth/me')).user;
  }

  // --- users ------------------------------------------------------------
  /** @returns {Promise<User[]>} */
  async users() {
    return (await this.request('GET', '/api/users')).users;
  }
  /** @param {string} q @returns {Promise<User[]>} */
  async searchUsers(q) {
    return (await this.request('GET', '/api/users/search?q=' + encodeURIComponent(q))).users;
  }
  /** @param {string} id @returns {Promise<User>} */
  async user(id) {
    return (await this.request('GET', '/api/users/' + encodeURIComponent(id))).user;
  }

  // --- messages ---------------------------------------------------------
  /**
   * One page of a DM or group history, oldest→newest.
   * @param {{to: string}|{groupId: string}} target
   * @param {{before?: string, limit?: number}} [page]
   * @returns {Promise<{messages: Message[], hasMore: boolean}>}
   */
  history(target, page = {}) {
    const params = new URLSearchParams();
    if (page.before) params.set('before', page.before);
    params.set('limit', String(page.limit || 50));
    const base =
      'groupId' in target
        ? '/api/messages/group/' + encodeURIComponent(target.groupId)
        : '/api/messages/' + encodeURIComponent(target.to);
    return this.request('GET', base + '?' + params);
  }
  /** @returns {Promise<{users: Record<string, number>, groups: Record<string, number>}>} */
  unreadCounts() {
    return this.request('GET', '/api/messages/unread/count');
  }

  // --- groups -----------------------------------------------------------
  /** @returns {Promise<Group[]>} */
  async myGroups() {
    return (await this.request('GET', '/api/groups')).groups;
  }
  /** @returns {Promise<Group[]>} */
  async allGroups() {
    return (await this.request('GET', '/api/groups/all')).groups;
  }
  /** @param {string} id @returns {Promise<Group>} */
  async group(id) {
    return (await this.request('GET', '/api/groups/' + encodeURIComponent(id))).group;
  }
  /** @param {string} name @param {string} description @param {string[]} members @returns {Promise<Group>} */
  async createGroup(name, description, members) {
    return (await this.request('POST', '/api/groups', { name, description, members })).group;
  }
  /** @param {string} id @returns {Promise<Group>} */
  async joinGroup(id) {
    return (await this.request('POST', `/api/groups/${encodeURIComponent(id)}/join`)).group;
  }
  /** @param {string} id @returns {Promise<Group>} */
  async leaveGroup(id) {
    return (await this.request('POST', `/api/groups/${encodeURIComponent(id)}/leave`)).group;
  }
  /** @param {string} id @param {string} userId @returns {Promise<Group>} */
  async addMember(id, userId) {
    return (await this.request('POST', `/api/groups/${encodeURIComponent(id)}/add-member`, { userId })).group;
  }

  // --- calls ------------------------------------------------------------
  /** @returns {Promise<{iceServers: RTCIceServer[], ttl: number}>} */
  iceServers() {
    return this.request('GET', '/api/ice-servers');
  }

  // --- files ------------------------------------------------------------
  /**
   * Upload one file as the multipart part `file`, reporting progress.
   * XMLHttpRequest because fetch cannot report upload progress.
   * @param {Blob} file
   * @param {string} name
   * @param {(loaded: number, total: number) => void} onProgress
   * @returns {Upload}
   */
  upload(file, name, onProgress) {
    const xhr = new XMLHttpRequest();
    const promise = new Promise((resolve, reject) => {
      xhr.open('POST', '/api/files/upload');
      const token = this.getToken();
      if (token) xhr.setRequestHeader('Authorization', 'Bearer ' + token);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
      xhr.onerror = () => reject(new ApiError(0, 'network', 'Upload failed: cannot reach the server.'));
      xhr.onabort = () => reject(new ApiError(0, 'aborted', 'Upload cancelled.'));
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          try {
            resolve(JSON.parse(xhr.responseText).file);
          } catch {
            reject(new ApiError(xhr.status, 'bad_response', 'The server sent an unreadable answer.'));
          }
        } else {
          const err = errorFrom(xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After'));
          if (xhr.status === 401) this.onUnauthorized(err);
          reject(err);
        }
      };
      const form = new FormData();
      form.append('file', file, name);
      xhr.send(form);
    });
    return { promise, abort: () => xhr.abort() };
  }

  /**
   * Download a file with the Authorization header (an <img src> could not send it).
   * @param {string} url a File.url from the server
   * @param {AbortSignal} [signal]
   * @returns {Promise<Blob>}
   */
  async fetchBlob(url, signal) {
    if (!url.startsWith('/api/files/download/')) {
      throw new ApiError(0, 'bad_url', 'Refusing to fetch a file from an unexpected address.');
    }
    let res;
    try {
      res = await fetch(url, { headers: this.#authHeaders(), credentials: 'same-origin', signal });
    } catch (err) {
      if (signal && signal.aborted) throw new ApiError(0, 'aborted', 'Download cancelled.');
      throw new ApiError(0, 'network', 'Cannot reach the server.');
    }
    if (!res.ok) throw errorFrom(res.status, await res.text(), res.headers.get('Retry-After'));
    return res.blob();
  }
}
