"use client";

import { useEffect, useRef } from "react";

/** Bars that follow the microphone level (or pulse while the reply plays). */
export function AudioVisualizer({
  levelRef,
  active,
  speaking,
}: {
  levelRef: { readonly current: number };
  active: boolean;
  speaking: boolean;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const speakingRef = useRef(speaking);
  speakingRef.current = speaking;

  useEffect(() => {
    const el = canvas.current;
    if (!el) return;
    const ctx = el.getContext("2d");
    if (!ctx) return;
    const bars = new Array<number>(24).fill(0);
    let frame = 0;
    let t = 0;
    const draw = () => {
      const dpr = window.devicePixelRatio || 1;
      const w = el.clientWidth;
      const h = el.clientHeight;
      if (el.width !== w * dpr) el.width = w * dpr;
      if (el.height !== h * dpr) el.height = h * dpr;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);
      t += 1;
      const level = !active ? 0 : speakingRef.current ? 0.25 + 0.2 * Math.sin(t / 6) : Math.min(1, levelRef.current * 6);
      bars.shift();
      bars.push(level);
      const gap = 4;
      const bw = (w - gap * (bars.length - 1)) / bars.length;
      ctx.fillStyle = !active ? "#262c3d" : speakingRef.current ? "#8b7bff" : "#3ddc97";
      bars.forEach((v, i) => {
        const bh = Math.max(4, v * h);
        ctx.beginPath();
        ctx.roundRect(i * (bw + gap), (h - bh) / 2, bw, bh, bw / 2);
        ctx.fill();
      });
      // At rest: one frame of flat bars, no animation loop.
      if (active) frame = requestAnimationFrame(draw);
    };
    frame = requestAnimationFrame(draw);
    return () => cancelAnimationFrame(frame);
  }, [active, levelRef]);

  return <canvas ref={canvas} className="visualizer" data-testid="visualizer" aria-hidden="true" />;
}
