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

// drawScaled draws src (w x h) on a new canvas with a white margin, scaled
// so the longer side is between 300 and 1200 pixels.
function drawScaled(src, w, h) {
  const long = Math.max(w, h);
  const scale = long > 1200 ? 1200 / long : long < 300 ? Math.ceil(300 / long) : 1;
  const cw = Math.round(w * scale), ch = Math.round(h * scale);
  const pad = Math.round(Math.max(cw, ch) * 0.05);
  const c = document.createElement('canvas');
  c.width = cw + 2 * pad;
  c.height = ch + 2 * pad;
  const g = c.getContext('2d', { willReadFrequently: true });
  g.fillStyle = '#fff';
  g.fillRect(0, 0, c.width, c.height);
  g.imageSmoothingEnabled = scale < 1;
  g.drawImage(src, pad, pad, cw, ch);
  return c;
}

// decodeImageFile returns the text of the QR code in an image file.
export async function decodeImageFile(file) {
  let bmp;
  try {
    bmp = await createImageBitmap(file);
  } catch {
    throw new Error('That file is not an image the browser can read.');
  }
  const text = decodeCanvas(drawScaled(bmp, bmp.width, bmp.height));
  bmp.close && bmp.close();
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
