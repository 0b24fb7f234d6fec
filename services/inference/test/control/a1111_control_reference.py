"""Reference control maps made with OpenCV's Python binding, following the steps of AUTOMATIC1111's
ControlNet extension (Mikubill/sd-webui-controlnet: annotator/util.py HWC3, scripts/utils.py
resize_image_with_pad, scripts/preprocessor/model_free_preprocessors.py PreprocessorCanny,
scripts/controlnet.py detectmap_proc, scripts/lvminthin.py), so that dmesh's maps can be compared with them.

usage: a1111_control_reference.py DIR
  DIR/images.json  written here: the test images (synthetic shapes, a noisy photo-like scene, gray, RGBA)
  DIR/cases.json   read: [{"id", "image", "preprocessor": {...}, "target": {...} | null}]
  DIR/<id>.map     written: the control map, RGB8 interleaved; DIR/<id>.json its size
"""

import json
import os
import sys

import cv2
import numpy as np


def make_images(out_dir):
    rng = np.random.default_rng(20240607)
    images = {}

    shapes = np.full((400, 600, 3), 235, np.uint8)
    cv2.rectangle(shapes, (40, 50), (260, 220), (30, 60, 200), -1)
    cv2.circle(shapes, (420, 160), 110, (220, 40, 40), -1)
    cv2.ellipse(shapes, (300, 320), (180, 50), 15, 0, 360, (20, 160, 60), -1, cv2.LINE_AA)
    cv2.line(shapes, (10, 390), (590, 260), (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(shapes, "dmesh", (330, 380), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (90, 0, 120), 3, cv2.LINE_AA)
    images["shapes"] = shapes

    # Photo-like: smooth light, soft blobs of colour, texture and sensor noise.
    h, w = 700, 900
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 110 + 60 * np.sin(xx / 97.0) * np.cos(yy / 71.0) + 0.05 * xx
    photo = np.stack([base, base * 0.9 + 20, base * 0.7 + 40], axis=2)
    for _ in range(14):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(25, 120)
        colour = rng.uniform(-90, 90, 3)
        blob = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))) > 0.5
        photo[blob] += colour
    photo = cv2.GaussianBlur(photo, (0, 0), 1.5)
    photo += rng.normal(0, 9, photo.shape)
    images["photo"] = np.clip(photo, 0, 255).astype(np.uint8)

    images["gray"] = cv2.cvtColor(images["shapes"], cv2.COLOR_RGB2GRAY)[::2, ::2].copy()

    rgba = np.dstack([images["shapes"][:300, :300], np.zeros((300, 300), np.uint8)])
    rgba[:, :, 3] = np.clip(np.linspace(0, 255, 300)[None, :] + np.zeros((300, 1)), 0, 255).astype(np.uint8)
    images["rgba"] = rgba

    # A segmentation-like map: a few flat colours (resized nearest-neighbour).
    seg = np.zeros((240, 320, 3), np.uint8)
    for i, colour in enumerate([(120, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (204, 5, 255)]):
        cv2.rectangle(seg, (i * 60, i * 40), (i * 60 + 140, i * 40 + 110), colour, -1)
    images["segmentation"] = seg

    meta = {}
    for name, img in images.items():
        img.tofile(os.path.join(out_dir, name + ".raw"))
        meta[name] = {"height": img.shape[0], "width": img.shape[1], "channels": 1 if img.ndim == 2 else img.shape[2]}
    with open(os.path.join(out_dir, "images.json"), "w") as f:
        json.dump(meta, f)
    return images


def hwc3(x):
    """Gray repeated to 3 channels; RGBA composited over white in float32, truncated."""
    if x.ndim == 2:
        x = x[:, :, None]
    if x.shape[2] == 1:
        return np.concatenate([x, x, x], axis=2)
    if x.shape[2] == 4:
        colour = x[:, :, :3].astype(np.float32)
        alpha = x[:, :, 3:4].astype(np.float32) / 255.0
        return (colour * alpha + 255.0 * (1.0 - alpha)).clip(0, 255).astype(np.uint8)
    return x


def scale_and_pad(img, resolution):
    h, w = img.shape[:2]
    k = float(resolution) / float(min(h, w))
    th, tw = int(np.round(float(h) * k)), int(np.round(float(w) * k))
    img = cv2.resize(img, (tw, th), interpolation=cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA)
    pad = lambda n: int(np.ceil(float(n) / 64.0) * 64 - n)
    return np.pad(img, [[0, pad(th)], [0, pad(tw)], [0, 0]], mode="edge"), th, tw


def canny(img, resolution, low, high):
    padded, th, tw = scale_and_pad(img, resolution)
    edges = cv2.Canny(padded, int(low), int(high))
    return cv2.cvtColor(edges, cv2.COLOR_GRAY2RGB)[:th, :tw].copy()


LINES = [np.array(k, np.uint8) for k in (
    [[0, 0, 0], [1, 1, 1], [0, 0, 0]],
    [[0, 1, 0], [0, 1, 0], [0, 1, 0]],
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
    [[0, 0, 1], [0, 1, 0], [1, 0, 0]],
)]


def line_maxima(x):
    y = np.zeros_like(x)
    for k in LINES:
        np.putmask(y, cv2.dilate(x, kernel=k) == x, x)
    return y


def rotated(patterns):
    return [np.rot90(np.array(p, np.int32), k=k, axes=(0, 1)) for k in range(4) for p in patterns]


THIN = rotated([[[-1, -1, -1], [0, 1, 0], [1, 1, 1]], [[0, -1, -1], [1, 1, -1], [0, 1, 0]]])
PRUNE = rotated([[[-1, -1, -1], [-1, 1, -1], [0, 0, -1]], [[-1, -1, -1], [-1, 1, -1], [-1, 0, 0]]])


def thin_round(x, kernels):
    changed = False
    for k in kernels:
        hit = np.where(cv2.morphologyEx(x, cv2.MORPH_HITMISS, k) > 127)
        x[hit] = 0
        changed = changed or hit[0].shape[0] > 0
    return changed


def thin(x, prune):
    for _ in range(32):
        if not thin_round(x, THIN):
            break
    if prune:
        thin_round(x, PRUNE)
    return x


def careful_resize(x, size):
    w, h = size
    if x.shape[0] == h and x.shape[1] == w:
        return x
    smaller = w * h < x.shape[0] * x.shape[1]
    bigger = w * h > x.shape[0] * x.shape[1]
    colours = len(np.unique(x.reshape(-1, x.shape[2]), axis=0))
    binary = colours == 2 and np.min(x) < 16 and np.max(x) > 240
    one_pixel = False
    if binary:
        opened = cv2.dilate(cv2.erode(x, np.ones((3, 3), np.uint8)), np.ones((3, 3), np.uint8))
        one_pixel = np.where(opened < x)[0].shape[0] * 2 > np.where(x > 127)[0].shape[0]
    if 2 < colours < 200:
        interpolation = cv2.INTER_NEAREST
    elif smaller:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_CUBIC
    y = cv2.resize(x, size, interpolation=interpolation)
    if binary:
        y = np.mean(y.astype(np.float32), axis=2).clip(0, 255).astype(np.uint8)
        if one_pixel:
            y = line_maxima(y)
            _, y = cv2.threshold(y, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            y = thin(y, prune=bigger)
        else:
            _, y = cv2.threshold(y, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        y = np.stack([y] * 3, axis=2)
    return y


def fit(m, mode, h, w):
    if mode == "just-resize":
        return careful_resize(m, (w, h))
    oh, ow = float(m.shape[0]), float(m.shape[1])
    k = (min if mode == "resize-and-fill" else max)(float(h) / oh, float(w) / ow)
    size = (int(np.round(ow * k)), int(np.round(oh * k)))
    if mode == "resize-and-fill":
        border = np.concatenate([m[0, :, :], m[-1, :, :], m[:, 0, :], m[:, -1, :]], axis=0)
        out = np.tile(np.median(border, axis=0).astype(m.dtype)[None, None], [h, w, 1])
        m = careful_resize(m, size)
        top, left = max(0, (h - m.shape[0]) // 2), max(0, (w - m.shape[1]) // 2)
        out[top:top + m.shape[0], left:left + m.shape[1]] = m
        return out
    m = careful_resize(m, size)
    top, left = max(0, (m.shape[0] - h) // 2), max(0, (m.shape[1] - w) // 2)
    return m[top:top + h, left:left + w]


def pixel_perfect(img, h, w, mode):
    k = (min if mode == "resize-and-fill" else max)(float(h) / img.shape[0], float(w) / img.shape[1])
    return int(np.round(k * float(min(img.shape[0], img.shape[1]))))


def main(out_dir):
    images = make_images(out_dir)
    with open(os.path.join(out_dir, "cases.json")) as f:
        cases = json.load(f)
    for case in cases:
        img = hwc3(images[case["image"]])
        p, target = case["preprocessor"], case.get("target")
        resolution = p.get("resolution", 512)
        if p.get("pixel_perfect"):
            resolution = pixel_perfect(img, target["height"], target["width"], target["mode"])
        m = canny(img, resolution, p["low"], p["high"]) if p["name"] == "canny" else img
        if target:
            m = fit(hwc3(m), target["mode"], target["height"], target["width"])
        m = np.ascontiguousarray(m)
        m.tofile(os.path.join(out_dir, case["id"] + ".map"))
        with open(os.path.join(out_dir, case["id"] + ".json"), "w") as f:
            json.dump({"height": m.shape[0], "width": m.shape[1], "resolution": resolution}, f)


if __name__ == "__main__":
    main(sys.argv[1])
