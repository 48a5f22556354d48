// dermtool's one preprocessing definition (dermtool.data.preprocess.resize), ported to the browser so the
// phone feeds the model the same pixels as training, evaluation and `dermtool predict` did:
// the resize policy (squash, center_crop, pad) and Pillow's BILINEAR resampling, which widens its triangle
// filter when it shrinks an image (antialiasing) and rounds in 22-bit fixed point like Pillow's C code.
// MediaPipe then receives an image already at the model's input size.

const PRECISION_BITS = 22; // Pillow: 32 - 8 - 2
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

function triangle(x) {
  const distance = Math.abs(x);
  return distance < 1 ? 1 - distance : 0;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis.
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // bilinear support 1.0, widened when shrinking
  const bounds = [];
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    let first = Math.trunc(center - support + 0.5);
    if (first < 0) first = 0;
    let last = Math.trunc(center + support + 0.5);
    if (last > inSize) last = inSize;
    const weights = [];
    let total = 0;
    for (let index = first; index < last; index++) {
      const weight = triangle((index - center + 0.5) / filterScale);
      weights.push(weight);
      total += weight;
    }
    const fixed = weights.map((weight) => {
      const normalised = total !== 0 ? weight / total : weight;
      return normalised < 0 ? Math.trunc(-0.5 + normalised * ONE) : Math.trunc(0.5 + normalised * ONE);
    });
    bounds.push({ first, fixed });
  }
  return bounds;
}

function clip8(sum) {
  if (sum < 0) return 0;
  const value = Math.floor(sum / ONE);
  return value > 255 ? 255 : value;
}

// Resize RGB pixels (Uint8Array, 3 per pixel) like PIL.Image.resize(..., BILINEAR): horizontal pass over
// the rows the vertical pass needs, then the vertical pass.
export function resizeBilinear(pixels, width, height, outWidth, outHeight) {
  if (width === outWidth && height === outHeight) return pixels;
  const vertical = coefficients(height, outHeight);
  const rowFirst = vertical[0].first;
  const lastBound = vertical[outHeight - 1];
  const rowLast = lastBound.first + lastBound.fixed.length;
  let source = pixels;
  let sourceWidth = width;
  let rowOffset = 0;
  if (outWidth !== width) {
    const horizontal = coefficients(width, outWidth);
    const rows = rowLast - rowFirst;
    const temporary = new Uint8Array(outWidth * rows * 3);
    for (let y = 0; y < rows; y++) {
      const inRow = (y + rowFirst) * width * 3;
      for (let x = 0; x < outWidth; x++) {
        const { first, fixed } = horizontal[x];
        let red = HALF;
        let green = HALF;
        let blue = HALF;
        for (let k = 0; k < fixed.length; k++) {
          const at = inRow + (first + k) * 3;
          red += pixels[at] * fixed[k];
          green += pixels[at + 1] * fixed[k];
          blue += pixels[at + 2] * fixed[k];
        }
        const out = (y * outWidth + x) * 3;
        temporary[out] = clip8(red);
        temporary[out + 1] = clip8(green);
        temporary[out + 2] = clip8(blue);
      }
    }
    source = temporary;
    sourceWidth = outWidth;
    rowOffset = rowFirst;
  }
  if (outHeight === height) return source;
  const result = new Uint8Array(outWidth * outHeight * 3);
  for (let y = 0; y < outHeight; y++) {
    const { first, fixed } = vertical[y];
    for (let x = 0; x < outWidth; x++) {
      let red = HALF;
      let green = HALF;
      let blue = HALF;
      for (let k = 0; k < fixed.length; k++) {
        const at = ((first - rowOffset + k) * sourceWidth + x) * 3;
        red += source[at] * fixed[k];
        green += source[at + 1] * fixed[k];
        blue += source[at + 2] * fixed[k];
      }
      const out = (y * outWidth + x) * 3;
      result[out] = clip8(red);
      result[out + 1] = clip8(green);
      result[out + 2] = clip8(blue);
    }
  }
  return result;
}

function crop(pixels, width, left, top, cropWidth, cropHeight) {
  const result = new Uint8Array(cropWidth * cropHeight * 3);
  for (let y = 0; y < cropHeight; y++) {
    const from = ((y + top) * width + left) * 3;
    result.set(pixels.subarray(from, from + cropWidth * 3), y * cropWidth * 3);
  }
  return result;
}

// dermtool.data.preprocess.resize: RGB pixels of any size -> size x size RGB pixels.
export function resizeForModel(pixels, width, height, size, policy) {
  if (policy === "center_crop") {
    const side = Math.min(width, height);
    const top = Math.floor((height - side) / 2);
    const left = Math.floor((width - side) / 2);
    return resizeBilinear(crop(pixels, width, left, top, side, side), side, side, size, size);
  }
  if (policy === "pad") {
    const scale = size / Math.max(width, height);
    // Python's round() rounds halves to even.
    const roundHalfEven = (value) => {
      const floor = Math.floor(value);
      const difference = value - floor;
      if (difference > 0.5) return floor + 1;
      if (difference < 0.5) return floor;
      return floor % 2 === 0 ? floor : floor + 1;
    };
    const newWidth = Math.min(size, Math.max(1, roundHalfEven(width * scale)));
    const newHeight = Math.min(size, Math.max(1, roundHalfEven(height * scale)));
    const resized = resizeBilinear(pixels, width, height, newWidth, newHeight);
    const result = new Uint8Array(size * size * 3); // black borders
    const left = Math.floor((size - newWidth) / 2);
    const top = Math.floor((size - newHeight) / 2);
    for (let y = 0; y < newHeight; y++) {
      result.set(resized.subarray(y * newWidth * 3, (y + 1) * newWidth * 3), ((y + top) * size + left) * 3);
    }
    return result;
  }
  return resizeBilinear(pixels, width, height, size, size); // squash
}

// The decoded photo's RGB pixels: EXIF orientation applied, no colour-profile conversion (like Pillow).
export async function decodeRgb(blob) {
  const bitmap = await createImageBitmap(blob, { imageOrientation: "from-image", colorSpaceConversion: "none" });
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  bitmap.close();
  const rgb = new Uint8Array(canvas.width * canvas.height * 3);
  for (let source = 0, target = 0; source < rgba.length; source += 4, target += 3) {
    rgb[target] = rgba[source];
    rgb[target + 1] = rgba[source + 1];
    rgb[target + 2] = rgba[source + 2];
  }
  return { pixels: rgb, width: canvas.width, height: canvas.height };
}

// Model-size RGB pixels as a canvas MediaPipe can classify (it sees an image already at its input size).
export function toCanvas(pixels, size) {
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  const context = canvas.getContext("2d");
  const image = context.createImageData(size, size);
  for (let source = 0, target = 0; source < pixels.length; source += 3, target += 4) {
    image.data[target] = pixels[source];
    image.data[target + 1] = pixels[source + 1];
    image.data[target + 2] = pixels[source + 2];
    image.data[target + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  return canvas;
}
