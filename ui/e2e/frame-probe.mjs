// @ts-check
/**
 * Video frame counters for the streamed session page, in the spirit of tests/e2e/streaming/page-probe.js.
 * The journey passes `installFrameProbe` to `context.addInitScript`, so it runs in every page and frame
 * (the viewer's cross-origin iframe too) before the page's own scripts, without depending on the Selkies
 * client's internals:
 *  - decoded: frames output by WebCodecs `VideoDecoder`s that were given more than one chunk (the client's
 *    one-frame codec capability probe does not count);
 *  - presented: frames shown by any `<video>` (requestVideoFrameCallback), where the client renders.
 * Read with `frame.evaluate(() => window.__ssFrames.read())`: a {@link FrameCounts}.
 *
 * Playwright serializes the function with `toString()`: it must not refer to anything outside itself.
 */

/**
 * @typedef {object} FrameCounts
 * @property {number} now               Date.now() in the page
 * @property {number} decoded           frames output by streaming decoders so far
 * @property {number} presented         frames presented by <video> elements so far
 * @property {number} firstDecodedAt    Date.now() of the first decoded frame, 0 before
 * @property {number} decoders          VideoDecoders created (the codec probe included)
 * @property {{ id: string, width: number, height: number }[]} videos  <video> elements seen, their stream size
 */

export function installFrameProbe() {
  const w = /** @type {any} */ (window);
  if (w.__ssFrames) return;
  /** @type {{ chunks: number, outputs: number, firstOutputAt: number }[]} */
  const decoders = [];
  /** @type {HTMLVideoElement[]} */
  const videos = [];
  let presented = 0;
  Object.defineProperty(w, '__ssFrames', {
    value: {
      /** @returns {FrameCounts} */
      read() {
        const streaming = decoders.filter((d) => d.chunks > 1);
        const first = streaming.map((d) => d.firstOutputAt).filter((t) => t > 0);
        return {
          now: Date.now(),
          decoded: streaming.reduce((n, d) => n + d.outputs, 0),
          presented,
          firstDecodedAt: first.length ? Math.min(...first) : 0,
          decoders: decoders.length,
          videos: videos.map((v) => ({ id: v.id, width: v.videoWidth, height: v.videoHeight })),
        };
      },
    },
  });

  const Native = window.VideoDecoder;
  if (typeof Native === 'function') {
    window.VideoDecoder = class VideoDecoder extends Native {
      /** @param {VideoDecoderInit} init */
      constructor(init) {
        const record = { chunks: 0, outputs: 0, firstOutputAt: 0 };
        super({
          ...init,
          output(frame) {
            record.outputs += 1;
            if (!record.firstOutputAt) record.firstOutputAt = Date.now();
            return init.output(frame);
          },
        });
        decoders.push(record);
        this.ssRecord = record;
      }

      /** @param {EncodedVideoChunk} chunk */
      decode(chunk) {
        this.ssRecord.chunks += 1;
        return super.decode(chunk);
      }
    };
  }

  /** @param {HTMLVideoElement} video */
  const watch = (video) => {
    if (videos.includes(video) || typeof video.requestVideoFrameCallback !== 'function') return;
    videos.push(video);
    const onFrame = () => {
      presented += 1;
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  };
  const scan = () => document.querySelectorAll('video').forEach(watch);
  new MutationObserver(scan).observe(document, { childList: true, subtree: true });
  document.addEventListener('DOMContentLoaded', scan);
}
