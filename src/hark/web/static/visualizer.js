// Microphone level visualiser: a mirrored bar history on a canvas, newest bars at the centre,
// older ones drifting outwards. Levels are the capture worklet's per-chunk RMS.

const HISTORY_STEP_MS = 45;

/** Map an RMS amplitude (0..1) to a 0..1 display level on a dB scale. */
export function levelFromRms(rms) {
  if (!(rms > 0)) return 0;
  const db = 20 * Math.log10(rms);
  const v = (db + 60) / 48; // -60 dBFS → 0, -12 dBFS → 1
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

export class LevelMeter {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {(level: number) => void} onFrame  called every frame with the smoothed level
   */
  constructor(canvas, onFrame) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onFrame = onFrame;
    this.target = 0;
    this.level = 0;
    this.history = [];
    this.lastPush = 0;
    this.active = false;
    this.color = "#888";
    this.dim = "#8884";
    this.raf = 0;
    this.resize = this.resize.bind(this);
    this.frame = this.frame.bind(this);
    if (typeof ResizeObserver !== "undefined") new ResizeObserver(this.resize).observe(canvas);
    window.addEventListener("resize", this.resize);
    this.resize();
    this.refreshColors();
    this.raf = requestAnimationFrame(this.frame);
  }

  refreshColors() {
    this.settled = false;
    const style = getComputedStyle(this.canvas);
    this.color = style.getPropertyValue("--meter-color").trim() || style.color;
    this.dim = style.getPropertyValue("--meter-idle").trim() || this.color;
  }

  setActive(active) {
    this.active = active;
    this.settled = false;
    if (!active) this.target = 0;
    this.refreshColors();
  }

  push(rms) {
    this.target = levelFromRms(rms);
  }

  resize() {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(rect.width * dpr));
    const h = Math.max(1, Math.round(rect.height * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.dpr = dpr;
    this.settled = false;
  }

  frame(now) {
    this.raf = requestAnimationFrame(this.frame);
    // Fast attack, slower release.
    const k = this.target > this.level ? 0.5 : 0.12;
    this.level += (this.target - this.level) * k;
    if (now - this.lastPush >= HISTORY_STEP_MS) {
      this.lastPush = now;
      this.history.unshift(this.active ? this.level : 0);
      if (this.history.length > 256) this.history.length = 256;
      // The target decays if chunks stop arriving.
      this.target *= 0.85;
    }
    if (this.onFrame) this.onFrame(this.active ? this.level : 0);
    // Once stopped and settled, the picture no longer changes: skip the redraw.
    if (!this.active && this.level < 0.001 && this.history.every((v) => v === 0)) {
      if (this.settled) return;
      this.settled = true;
    } else {
      this.settled = false;
    }
    this.draw();
  }

  draw() {
    const { canvas, ctx } = this;
    const dpr = this.dpr || 1;
    const w = canvas.width;
    const h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    const bar = 3 * dpr;
    const gap = 4 * dpr;
    const pitch = bar + gap;
    const mid = w / 2;
    const gapCentre = Math.min(w * 0.22, 110 * dpr); // room for the button
    const perSide = Math.max(0, Math.floor((mid - gapCentre) / pitch));
    const minH = 3 * dpr;
    const maxH = h * 0.9;
    for (let i = 0; i < perSide; i++) {
      const v = this.history[i] || 0;
      // Bars fade out towards the edges.
      const fade = 1 - i / (perSide + 4);
      const bh = Math.max(minH, v * maxH * (0.55 + 0.45 * fade));
      ctx.globalAlpha = this.active ? 0.25 + 0.75 * fade : 0.5 * fade;
      ctx.fillStyle = this.active && v > 0.02 ? this.color : this.dim;
      const y = (h - bh) / 2;
      const offset = gapCentre + i * pitch;
      this.roundRect(mid + offset, y, bar, bh, bar / 2);
      this.roundRect(mid - offset - bar, y, bar, bh, bar / 2);
    }
    ctx.globalAlpha = 1;
  }

  roundRect(x, y, w, h, r) {
    const ctx = this.ctx;
    ctx.beginPath();
    if (ctx.roundRect) ctx.roundRect(x, y, w, h, r);
    else ctx.rect(x, y, w, h);
    ctx.fill();
  }
}
