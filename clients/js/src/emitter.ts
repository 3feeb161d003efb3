// A tiny typed event emitter (no dependency, no DOM).

export type Listener<T> = (value: T) => void;

export class Emitter<M extends { [K in keyof M]: unknown }> {
  private listeners: { [K in keyof M]?: Set<Listener<M[K]>> } = {};

  /** Subscribe; returns the unsubscribe function. */
  on<K extends keyof M>(type: K, listener: Listener<M[K]>): () => void {
    const set = (this.listeners[type] ??= new Set());
    set.add(listener);
    return () => set.delete(listener);
  }

  emit<K extends keyof M>(type: K, value: M[K]): void {
    for (const listener of this.listeners[type] ?? []) {
      try {
        listener(value);
      } catch (err) {
        console.error("hark: a listener threw", err);
      }
    }
  }

  clear(): void {
    this.listeners = {};
  }
}
