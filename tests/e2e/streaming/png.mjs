// A minimal PNG decoder (8-bit grey/grey+alpha/RGB/RGBA, not interlaced: what Chromium and
// Selkies write) and the pixel statistics the streaming test needs. No dependencies.

import zlib from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const CHANNELS = { 0: 1, 2: 3, 4: 2, 6: 4 };

/** `{width, height, channels, data}` with `data` one byte per channel, rows top to bottom. */
export function decodePng(buffer) {
  if (!Buffer.isBuffer(buffer) || buffer.length < 8 || !buffer.subarray(0, 8).equals(SIGNATURE)) {
    throw new Error('not a PNG');
  }
  let offset = 8;
  let header;
  const idat = [];
  while (offset + 8 <= buffer.length) {
    const length = buffer.readUInt32BE(offset);
    const type = buffer.toString('latin1', offset + 4, offset + 8);
    const body = buffer.subarray(offset + 8, offset + 8 + length);
    offset += 12 + length;
    if (type === 'IHDR') {
      header = {
        width: body.readUInt32BE(0),
        height: body.readUInt32BE(4),
        depth: body[8],
        colorType: body[9],
        interlace: body[12],
      };
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      break;
    }
  }
  if (!header) throw new Error('PNG without IHDR');
  const channels = CHANNELS[header.colorType];
  if (header.depth !== 8 || !channels || header.interlace !== 0) {
    throw new Error(`unsupported PNG (depth ${header.depth}, color type ${header.colorType}, interlace ${header.interlace})`);
  }
  const { width, height } = header;
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) throw new Error('truncated PNG data');
  const data = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = y * stride;
    const prev = y > 0 ? out - stride : -1;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? data[out + x - channels] : 0;
      const b = prev >= 0 ? data[prev + x] : 0;
      const c = prev >= 0 && x >= channels ? data[prev + x - channels] : 0;
      let value = line[x];
      switch (filter) {
        case 0:
          break;
        case 1:
          value += a;
          break;
        case 2:
          value += b;
          break;
        case 3:
          value += (a + b) >> 1;
          break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          value += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          throw new Error(`bad PNG filter ${filter} on row ${y}`);
      }
      data[out + x] = value & 0xff;
    }
  }
  return { width, height, channels, data };
}

function rgb(image, i) {
  const o = i * image.channels;
  return image.channels >= 3
    ? [image.data[o], image.data[o + 1], image.data[o + 2]]
    : [image.data[o], image.data[o], image.data[o]];
}

/**
 * Pixel statistics of `image`, optionally of the rows from `top` down: how many distinct colours
 * (coarsely quantized), the standard deviation of luminance, and the share of strongly red pixels.
 */
export function pixelStats(image, { top = 0 } = {}) {
  const colours = new Set();
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  let red = 0;
  for (let y = top; y < image.height; y++) {
    for (let x = 0; x < image.width; x++) {
      const [r, g, b] = rgb(image, y * image.width + x);
      const luma = 0.299 * r + 0.587 * g + 0.114 * b;
      n++;
      sum += luma;
      sumSq += luma * luma;
      if (r > 200 && g < 80 && b < 80) red++;
      colours.add(((r >> 4) << 8) | ((g >> 4) << 4) | (b >> 4));
    }
  }
  const mean = n ? sum / n : 0;
  return {
    pixels: n,
    colours: colours.size,
    lumaStdDev: n ? Math.sqrt(Math.max(0, sumSq / n - mean * mean)) : 0,
    redShare: n ? red / n : 0,
  };
}

/** Share of pixels (0..1) whose RGB differs by more than `threshold` in any channel. */
export function changedShare(a, b, threshold = 32) {
  if (a.width !== b.width || a.height !== b.height) return 1;
  let changed = 0;
  const total = a.width * a.height;
  for (let i = 0; i < total; i++) {
    const [r1, g1, b1] = rgb(a, i);
    const [r2, g2, b2] = rgb(b, i);
    if (Math.abs(r1 - r2) > threshold || Math.abs(g1 - g2) > threshold || Math.abs(b1 - b2) > threshold) changed++;
  }
  return changed / total;
}
