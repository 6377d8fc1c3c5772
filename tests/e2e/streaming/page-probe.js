// Injected into the session page before its own scripts (Playwright addInitScript). Counts video
// frames without depending on the Selkies client's internals:
//  - presented: frames shown by any <video> element (requestVideoFrameCallback), which is where
//    the Selkies client puts full-frame H.264 (MediaStreamTrackGenerator / VideoTrackGenerator);
//  - decoded: frames output by WebCodecs VideoDecoders on the page that decoded more than one chunk
//    (the client's one-frame codec capability probe does not count), which also covers the client
//    drawing to a 2D canvas instead of a <video>.
// Times are Date.now() (wall clock, comparable with the test process).
(() => {
  if (window.__ssFrames) return;
  const decoders = [];
  const videos = [];
  const state = {
    presented: 0,
    firstPresentedAt: 0,
    read() {
      const streaming = decoders.filter((d) => d.chunks > 1);
      const firstDecoded = streaming.map((d) => d.firstOutputAt).filter((t) => t > 0);
      const quality = videos.map((v) => {
        const q = typeof v.getVideoPlaybackQuality === 'function' ? v.getVideoPlaybackQuality() : null;
        return {
          id: v.id,
          width: v.videoWidth,
          height: v.videoHeight,
          totalVideoFrames: q ? q.totalVideoFrames : null,
          droppedVideoFrames: q ? q.droppedVideoFrames : null,
        };
      });
      return {
        now: Date.now(),
        presented: state.presented,
        firstPresentedAt: state.firstPresentedAt,
        decoded: streaming.reduce((n, d) => n + d.outputs, 0),
        firstDecodedAt: firstDecoded.length ? Math.min(...firstDecoded) : 0,
        decoders: decoders.length,
        videos: quality,
      };
    },
  };
  Object.defineProperty(window, '__ssFrames', { value: state });

  const Native = window.VideoDecoder;
  if (typeof Native === 'function') {
    const Counted = class VideoDecoder extends Native {
      constructor(init) {
        const record = { chunks: 0, outputs: 0, firstOutputAt: 0 };
        const output = init && init.output;
        super({
          ...init,
          output(frame) {
            record.outputs++;
            if (!record.firstOutputAt) record.firstOutputAt = Date.now();
            return output.call(this, frame);
          },
        });
        decoders.push(record);
        this.__ssRecord = record;
      }

      decode(chunk) {
        this.__ssRecord.chunks++;
        return super.decode(chunk);
      }
    };
    window.VideoDecoder = Counted;
  }

  const watch = (video) => {
    if (videos.includes(video) || typeof video.requestVideoFrameCallback !== 'function') return;
    videos.push(video);
    const onFrame = () => {
      state.presented++;
      if (!state.firstPresentedAt) state.firstPresentedAt = Date.now();
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  };
  const scan = () => document.querySelectorAll('video').forEach(watch);
  new MutationObserver(scan).observe(document, { childList: true, subtree: true });
  document.addEventListener('DOMContentLoaded', scan);
})();
