// QR decoding in the browser with the vendored jsQR (a classic script that
// defines window.jsQR): from an uploaded photo, or from the camera.

function jsQR() {
  if (typeof window.jsQR !== 'function') throw new Error('The QR decoder did not load.');
  return window.jsQR;
}

// decodeCanvas decodes the QR code drawn on a canvas, or returns null.
function decodeCanvas(canvas) {
  const g = canvas.getContext('2d', { willReadFrequently: true });
  const img = g.getImageData(0, 0, canvas.width, canvas.height);
  const r = jsQR()(img.data, img.width, img.height, { inversionAttempts: 'attemptBoth' });
  return r ? r.data : null;
}

// drawScaled draws the region (sx, sy, w, h) of src on a new canvas with a
// white margin, its longer side scaled to long pixels.
function drawScaled(src, sx, sy, w, h, long) {
  const scale = long / Math.max(w, h);
  const cw = Math.round(w * scale), ch = Math.round(h * scale);
  const pad = Math.round(Math.max(cw, ch) * 0.05);
  const c = document.createElement('canvas');
  c.width = cw + 2 * pad;
  c.height = ch + 2 * pad;
  const g = c.getContext('2d', { willReadFrequently: true });
  g.fillStyle = '#fff';
  g.fillRect(0, 0, c.width, c.height);
  g.imageSmoothingEnabled = scale < 1;
  g.imageSmoothingQuality = 'high';
  g.drawImage(src, sx, sy, w, h, pad, pad, cw, ch);
  return c;
}

// attempts lists the regions and sizes a photo is tried at, cheapest
// first: the whole image at several sizes (a grainy photo often decodes
// only scaled down, which averages the grain away, and small sizes are
// fast, while noise makes a large one slow), then the centre and the four
// corners, where a small code in a large photo grows.
export function attempts(w, h) {
  const long = Math.max(w, h);
  const sizes = long < 300 ? [600, 300] : [400, 600, 300, 800, 1200].filter((n) => n <= long);
  if (!sizes.length) sizes.push(long);
  const out = sizes.map((n) => ({ x: 0, y: 0, w, h, long: n }));
  const cw = Math.round(w * 0.6), ch = Math.round(h * 0.6);
  const crops = [[(w - cw) / 2, (h - ch) / 2], [0, 0], [w - cw, 0], [0, h - ch], [w - cw, h - ch]];
  for (const n of [500, 800]) for (const [x, y] of crops) out.push({ x: Math.round(x), y: Math.round(y), w: cw, h: ch, long: n });
  return out;
}

// decodeImageFile returns the text of the QR code in an image file, trying
// several scales and crops before giving up.
export async function decodeImageFile(file) {
  let bmp;
  try {
    bmp = await createImageBitmap(file);
  } catch {
    throw new Error('That file is not an image the browser can read.');
  }
  let text = null;
  try {
    for (const a of attempts(bmp.width, bmp.height)) {
      text = decodeCanvas(drawScaled(bmp, a.x, a.y, a.w, a.h, a.long));
      if (text) break;
    }
  } finally {
    if (bmp.close) bmp.close();
  }
  if (!text) throw new Error('No QR code found in the image. Try a sharper, closer photo.');
  return text;
}

// scanCamera shows the camera in video and resolves with the first QR code
// seen. stop() ends the scan (the promise then rejects with AbortError).
export function scanCamera(video) {
  let stream = null;
  let raf = 0;
  let stopped = false;
  let rejectFn;
  const done = new Promise((resolve, reject) => {
    rejectFn = reject;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      reject(new Error('This browser cannot use the camera here (it needs HTTPS or localhost).'));
      return;
    }
    navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false }).then((s) => {
      if (stopped) { s.getTracks().forEach((t) => t.stop()); return; }
      stream = s;
      video.srcObject = s;
      video.setAttribute('playsinline', '');
      video.muted = true;
      video.play().catch(() => {});
      const canvas = document.createElement('canvas');
      const tick = () => {
        if (stopped) return;
        if (video.readyState >= 2 && video.videoWidth) {
          canvas.width = video.videoWidth;
          canvas.height = video.videoHeight;
          canvas.getContext('2d', { willReadFrequently: true }).drawImage(video, 0, 0);
          const text = decodeCanvas(canvas);
          if (text) { cleanup(); resolve(text); return; }
        }
        raf = requestAnimationFrame(tick);
      };
      raf = requestAnimationFrame(tick);
    }, (e) => reject(new Error('Camera not available: ' + (e.message || e.name))));
  });
  function cleanup() {
    stopped = true;
    cancelAnimationFrame(raf);
    if (stream) stream.getTracks().forEach((t) => t.stop());
    video.srcObject = null;
  }
  return {
    done,
    stop() {
      if (stopped) return;
      cleanup();
      const e = new Error('scan stopped');
      e.name = 'AbortError';
      rejectFn(e);
    },
  };
}
