// @ts-check
/**
 * A tiny typed event emitter: the only way state leaves the protocol layer and
 * the store. `M` maps event names to their payload type.
 * @template {Record<string, any>} M
 */
export class Emitter {
  /** @type {Map<keyof M, Set<(data: any) => void>>} */
  #handlers = new Map();

  /**
   * Subscribe; returns the function that unsubscribes.
   * @template {keyof M} K
   * @param {K} type
   * @param {(data: M[K]) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    let set = this.#handlers.get(type);
    if (!set) {
      set = new Set();
      this.#handlers.set(type, set);
    }
    set.add(fn);
    return () => set.delete(fn);
  }

  /**
   * Deliver to every subscriber; one failing handler does not starve the others.
   * @template {keyof M} K
   * @param {K} type
   * @param {M[K]} data
   */
  emit(type, data) {
    const set = this.#handlers.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(data);
      } catch (err) {
        console.error(`handler for ${String(type)} failed`, err);
      }
    }
  }
}
