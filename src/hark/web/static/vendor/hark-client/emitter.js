// A tiny typed event emitter (no dependency, no DOM).
export class Emitter {
    listeners = {};
    /** Subscribe; returns the unsubscribe function. */
    on(type, listener) {
        const set = (this.listeners[type] ??= new Set());
        set.add(listener);
        return () => set.delete(listener);
    }
    emit(type, value) {
        for (const listener of this.listeners[type] ?? []) {
            try {
                listener(value);
            }
            catch (err) {
                console.error("hark: a listener threw", err);
            }
        }
    }
    clear() {
        this.listeners = {};
    }
}
