import { ImageEncoding } from "@dmesh/contracts/dmesh/common/v1/image_pb.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { Alert } from "../ui/alert.js";
import type { ImageChoice } from "./draft.js";

/**
 * Paints an inpainting mask over the image at its own resolution: white where the model repaints, black
 * elsewhere, sent as a PNG. Pointer (mouse, pen, touch) paints; Fill and Clear work from the keyboard.
 */
export function MaskPainter(props: {
  image: ImageChoice;
  idPrefix: string;
  error: string | undefined;
  onMask: (mask: ImageChoice | undefined) => void;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [brush, setBrush] = useState(24);
  const drawing = useRef<{ x: number; y: number } | undefined>(undefined);
  const { width, height } = props.image;

  // A new image starts a new mask.
  useEffect(() => {
    const ctx = canvas.current?.getContext("2d");
    ctx?.clearRect(0, 0, width, height);
    props.onMask(undefined);
  }, [props.image.url]);

  const point = (ev: PointerEvent) => {
    const c = canvas.current as HTMLCanvasElement;
    const rect = c.getBoundingClientRect();
    return {
      x: ((ev.clientX - rect.left) * c.width) / rect.width,
      y: ((ev.clientY - rect.top) * c.height) / rect.height,
    };
  };
  const stroke = (from: { x: number; y: number }, to: { x: number; y: number }) => {
    const ctx = canvas.current?.getContext("2d");
    if (!ctx) return;
    const c = canvas.current as HTMLCanvasElement;
    const rect = c.getBoundingClientRect();
    ctx.strokeStyle = "#fff";
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    // The brush is sized in screen pixels, whatever the image's scale.
    ctx.lineWidth = (brush * c.width) / Math.max(1, rect.width);
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
  };
  const exportMask = () => {
    const paint = canvas.current;
    if (!paint) return;
    const out = document.createElement("canvas");
    out.width = width;
    out.height = height;
    const ctx = out.getContext("2d");
    if (!ctx) return;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
    ctx.drawImage(paint, 0, 0);
    const painted = ctx.getImageData(0, 0, width, height).data.some((v, i) => i % 4 === 0 && v > 0);
    if (!painted) {
      props.onMask(undefined);
      return;
    }
    out.toBlob(async (blob) => {
      if (!blob) return;
      const data = new Uint8Array(await blob.arrayBuffer());
      props.onMask({
        url: out.toDataURL("image/png"),
        width,
        height,
        label: "painted mask",
        input: { source: { case: "image", value: { encoding: ImageEncoding.PNG, data, width, height } } },
      });
    }, "image/png");
  };
  const fill = (on: boolean) => {
    const ctx = canvas.current?.getContext("2d");
    if (!ctx) return;
    ctx.clearRect(0, 0, width, height);
    if (on) {
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, width, height);
    }
    exportMask();
  };

  const id = `${props.idPrefix}-mask`;
  return (
    <fieldset class={`mask-painter${props.error ? " has-error" : ""}`}>
      <legend>Mask: paint where the image changes</legend>
      <div class="mask-stage" style={{ aspectRatio: `${width} / ${height}` }}>
        <img src={props.image.url} alt="" />
        <canvas
          ref={canvas}
          id={id}
          width={width}
          height={height}
          role="img"
          aria-label="Mask canvas: drag to paint the area to repaint"
          aria-describedby={props.error ? `${id}-error` : undefined}
          onPointerDown={(ev) => {
            (ev.currentTarget as HTMLCanvasElement).setPointerCapture(ev.pointerId);
            const p = point(ev);
            drawing.current = p;
            stroke(p, p);
          }}
          onPointerMove={(ev) => {
            if (!drawing.current) return;
            const p = point(ev);
            stroke(drawing.current, p);
            drawing.current = p;
          }}
          onPointerUp={() => {
            if (!drawing.current) return;
            drawing.current = undefined;
            exportMask();
          }}
        />
      </div>
      <div class="row">
        <label for={`${id}-brush`}>Brush size</label>
        <input
          id={`${id}-brush`}
          type="range"
          min={4}
          max={96}
          value={brush}
          onInput={(ev) => setBrush(Number(ev.currentTarget.value))}
        />
        <button type="button" onClick={() => fill(true)}>
          Fill mask
        </button>
        <button type="button" onClick={() => fill(false)}>
          Clear mask
        </button>
      </div>
      <Alert text={props.error} id={`${id}-error`} />
    </fieldset>
  );
}
