//! Thumbnails of shared images (issue 17): an image's plaintext in, a small
//! JPEG or PNG out. The type the file's record declares picks the decoder —
//! never a type guessed from the bytes — and the decoder runs within limits
//! a hostile file cannot get past: [`MAX_SOURCE`] bytes in, [`MAX_SIDE`]
//! pixels a side, [`MAX_DECODED`] bytes decoded, so a small header that
//! claims 60000×60000 pixels is refused before any pixel is allocated. The
//! image (a GIF's or WebP's first frame) is scaled to fit
//! [`BOUND`]×[`BOUND`], never up, turned upright if its EXIF says so (as a
//! browser shows it), and encoded as a JPEG, or as a PNG when some pixel is
//! transparent. Pure and blocking: the node runs it off the async runtime
//! and keeps what it made (`node/thumbs.rs`).

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use crate::NodeError;

/// The box a thumbnail fits in, in pixels a side.
pub const BOUND: u32 = 320;

/// The largest image (its plaintext, in bytes) a thumbnail is made of, the
/// same as the web app's largest preview: larger ones are downloaded.
pub const MAX_SOURCE: u64 = 20 << 20;

/// The widest and tallest image decoded.
pub const MAX_SIDE: u32 = 16_384;

/// The most decoding an image may allocate (its pixels, mostly): a 48
/// megapixel photo in RGB takes 140 MiB.
pub const MAX_DECODED: u64 = 256 << 20;

/// How a thumbnail's JPEG is compressed: small, and good enough at 320 px.
const JPEG_QUALITY: u8 = 80;

/// A thumbnail's image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An opaque image.
    Jpeg,
    /// An image with transparency.
    Png,
}

impl Kind {
    /// Its media type, as served.
    pub fn media_type(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
        }
    }
}

/// A thumbnail: its format and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thumbnail {
    /// JPEG or PNG.
    pub kind: Kind,
    /// The encoded image.
    pub bytes: Vec<u8>,
}

/// The decoder for a declared media type: the four image types the web app
/// shows, and nothing for anything else.
pub fn format_of(media_type: &str) -> Option<ImageFormat> {
    match media_type {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/webp" => Some(ImageFormat::WebP),
        "image/gif" => Some(ImageFormat::Gif),
        _ => None,
    }
}

/// The size of a `width`×`height` image scaled to fit `bound`×`bound`:
/// its aspect kept (rounded), never larger than it is, at least 1×1.
pub fn fit(width: u32, height: u32, bound: u32) -> (u32, u32) {
    if width <= bound && height <= bound {
        return (width, height);
    }
    let (long, short) = (u64::from(width.max(height)), u64::from(width.min(height)));
    let scaled = (short * u64::from(bound) + long / 2) / long;
    let scaled = u32::try_from(scaled).unwrap_or(bound).max(1);
    if width >= height {
        (bound, scaled)
    } else {
        (scaled, bound)
    }
}

/// A thumbnail of `bytes`, an image declared to be of `format`, for the
/// file named `name`. A [`NodeError::BadRequest`] says why the image gets
/// none (not what it claims to be, cut short, too large): the file's own
/// fault, the same every time. Any other error is this node's.
pub fn make(bytes: &[u8], format: ImageFormat, name: &str) -> Result<Thumbnail, NodeError> {
    if bytes.len() as u64 > MAX_SOURCE {
        return Err(too_large(name));
    }
    let refused = |e| refusal(name, format, e);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits());
    let mut decoder = reader.into_decoder().map_err(refused)?;
    // Before a pixel is allocated: what the header says it would take.
    limits()
        .reserve(decoder.total_bytes())
        .map_err(|e| refusal(name, format, e))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(NodeError::BadRequest(format!(
            "{name:?} is an image without pixels: there is nothing to show"
        )));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(|e| refusal(name, format, e))?;
    let (w, h) = fit(image.width(), image.height(), BOUND);
    let mut small = image.thumbnail_exact(w, h);
    drop(image);
    small.apply_orientation(orientation);
    encode(&small).map_err(|e| NodeError::failed(format!("encoding a thumbnail of {name:?}"), e))
}

/// The limits every decoder runs under.
fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED);
    limits
}

/// `image` as a JPEG, or as a PNG if some pixel of it is transparent.
fn encode(image: &DynamicImage) -> Result<Thumbnail, ImageError> {
    let mut bytes = Vec::new();
    let kind = if transparent(image) {
        image
            .to_rgba8()
            .write_with_encoder(PngEncoder::new(&mut bytes))?;
        Kind::Png
    } else {
        image
            .to_rgb8()
            .write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY))?;
        Kind::Jpeg
    };
    Ok(Thumbnail { kind, bytes })
}

/// Whether some pixel of `image` is not fully opaque (many PNGs carry an
/// alpha channel they do not use: those are photos, made JPEGs).
fn transparent(image: &DynamicImage) -> bool {
    image.color().has_alpha() && image.to_rgba8().pixels().any(|p| p.0[3] < u8::MAX)
}

fn too_large(name: &str) -> NodeError {
    NodeError::BadRequest(format!(
        "{name:?} is too large for a thumbnail (at most {}, {MAX_SIDE} pixels a side \
         and {} decoded): download it",
        crate::disk::human_size(MAX_SOURCE),
        crate::disk::human_size(MAX_DECODED)
    ))
}

/// Why an image of declared `format` gets no thumbnail; a fault of this
/// node's (a failed encoder, a bug) stays one.
fn refusal(name: &str, format: ImageFormat, e: ImageError) -> NodeError {
    match e {
        ImageError::Limits(_) => too_large(name),
        ImageError::Decoding(_) | ImageError::Unsupported(_) | ImageError::IoError(_) => {
            NodeError::BadRequest(format!(
                "{name:?} is not a valid {} image ({e}): download it to see what it holds",
                type_name(format)
            ))
        }
        e => NodeError::failed(format!("making a thumbnail of {name:?}"), e),
    }
}

fn type_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Gif => "GIF",
        _ => "PNG",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::gif::{GifEncoder, Repeat};
    use image::{Frame, ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};

    fn png(image: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    fn gradient(width: u32, height: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }))
    }

    fn decoded(t: &Thumbnail) -> DynamicImage {
        let format = match t.kind {
            Kind::Jpeg => ImageFormat::Jpeg,
            Kind::Png => ImageFormat::Png,
        };
        image::load_from_memory_with_format(&t.bytes, format).unwrap()
    }

    #[test]
    fn an_image_fits_the_box_with_its_aspect_and_is_never_enlarged() {
        assert_eq!(fit(1200, 800, 320), (320, 213));
        assert_eq!(fit(800, 1200, 320), (213, 320));
        assert_eq!(fit(4000, 4000, 320), (320, 320));
        assert_eq!(fit(321, 320, 320), (320, 319));
        // Small ones stay as they are; a sliver keeps a pixel.
        assert_eq!(fit(200, 100, 320), (200, 100));
        assert_eq!(fit(320, 320, 320), (320, 320));
        assert_eq!(fit(1, 1, 320), (1, 1));
        assert_eq!(fit(16_384, 1, 320), (320, 1));
        assert_eq!(fit(1, 16_384, 320), (1, 320));
        assert_eq!(fit(u32::MAX, u32::MAX - 1, 320), (320, 320));
    }

    #[test]
    fn the_declared_type_picks_the_decoder_and_only_images_have_one() {
        assert_eq!(format_of("image/png"), Some(ImageFormat::Png));
        assert_eq!(format_of("image/jpeg"), Some(ImageFormat::Jpeg));
        assert_eq!(format_of("image/webp"), Some(ImageFormat::WebP));
        assert_eq!(format_of("image/gif"), Some(ImageFormat::Gif));
        for other in [
            "image/svg+xml",
            "text/html",
            "application/pdf",
            "image/tiff",
            "",
        ] {
            assert_eq!(format_of(other), None, "{other}");
        }
    }

    #[test]
    fn an_opaque_photo_becomes_a_small_jpeg() {
        let t = make(&png(&gradient(1200, 800)), ImageFormat::Png, "a.png").unwrap();
        assert_eq!(t.kind, Kind::Jpeg);
        let back = decoded(&t);
        assert_eq!((back.width(), back.height()), (320, 213));
        // An alpha channel every pixel leaves opaque is no transparency.
        let opaque = DynamicImage::ImageRgba8(RgbaImage::from_pixel(50, 40, Rgba([9, 9, 9, 255])));
        let t = make(&png(&opaque), ImageFormat::Png, "b.png").unwrap();
        assert_eq!(t.kind, Kind::Jpeg);
        assert_eq!((decoded(&t).width(), decoded(&t).height()), (50, 40));
    }

    #[test]
    fn transparency_is_kept_in_a_png() {
        let logo = DynamicImage::ImageRgba8(RgbaImage::from_fn(640, 100, |x, _| {
            Rgba([200, 10, 10, if x < 320 { 0 } else { 255 }])
        }));
        let t = make(&png(&logo), ImageFormat::Png, "logo.png").unwrap();
        assert_eq!(t.kind, Kind::Png);
        let back = decoded(&t).to_rgba8();
        assert_eq!(back.dimensions(), (320, 50));
        assert_eq!(back.get_pixel(10, 10).0[3], 0);
        assert_eq!(back.get_pixel(310, 10).0[3], 255);
    }

    #[test]
    fn a_gif_shows_its_first_frame() {
        let mut gif = Vec::new();
        {
            let mut enc = GifEncoder::new(&mut gif);
            enc.set_repeat(Repeat::Infinite).unwrap();
            for colour in [[255, 0, 0, 255], [0, 0, 255, 255]] {
                let frame = RgbaImage::from_pixel(400, 200, Rgba(colour));
                enc.encode_frame(Frame::new(frame)).unwrap();
            }
        }
        let t = make(&gif, ImageFormat::Gif, "a.gif").unwrap();
        let back = decoded(&t).to_rgb8();
        assert_eq!(back.dimensions(), (320, 160));
        let [r, _, b] = back.get_pixel(100, 80).0;
        assert!(r > 200 && b < 50, "the first frame is red: {r} {b}");
    }

    #[test]
    fn a_jpeg_turned_by_its_exif_is_shown_upright() {
        let mut jpeg = Vec::new();
        let mut enc = JpegEncoder::new(&mut jpeg);
        // EXIF, little-endian: one IFD entry, orientation (0x0112) = 6,
        // "rotate 90° clockwise to view".
        let exif = [
            b'I', b'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0,
            0,
        ];
        enc.set_exif_metadata(exif.to_vec()).unwrap();
        let wide = gradient(600, 300).to_rgb8();
        enc.write_image(&wide, 600, 300, image::ExtendedColorType::Rgb8)
            .unwrap();
        let t = make(&jpeg, ImageFormat::Jpeg, "phone.jpg").unwrap();
        let back = decoded(&t);
        assert_eq!((back.width(), back.height()), (160, 320));
    }

    #[test]
    fn what_is_not_the_declared_image_is_refused() {
        let refused = |bytes: &[u8], format| match make(bytes, format, "x") {
            Err(NodeError::BadRequest(why)) => why,
            other => panic!("not refused: {other:?}"),
        };
        let markup = b"<html><script>alert(1)</script></html>";
        assert!(refused(markup, ImageFormat::Png).contains("not a valid PNG"));
        // A real image of another type than declared.
        let mut jpeg = Vec::new();
        gradient(64, 64)
            .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        assert!(refused(&jpeg, ImageFormat::Png).contains("not a valid PNG"));
        assert!(refused(&png(&gradient(8, 8)), ImageFormat::Jpeg).contains("not a valid JPEG"));
        assert!(refused(markup, ImageFormat::Gif).contains("not a valid GIF"));
        assert!(refused(markup, ImageFormat::WebP).contains("not a valid WebP"));
        assert!(refused(b"", ImageFormat::Png).contains("not a valid PNG"));
        // Cut short.
        let whole = png(&gradient(300, 300));
        let cut = &whole[..whole.len() / 2];
        assert!(refused(cut, ImageFormat::Png).contains("not a valid PNG"));
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        let started = std::time::Instant::now();
        for (w, h) in [(60_000, 60_000), (MAX_SIDE + 1, 1), (MAX_SIDE, MAX_SIDE)] {
            match make(&bomb_header(w, h), ImageFormat::Png, "bomb.png") {
                Err(NodeError::BadRequest(why)) => assert!(why.contains("too large"), "{why}"),
                other => panic!("{w}×{h} not refused: {other:?}"),
            }
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    /// A PNG's signature, header (`width`×`height`, RGBA) and end: what a
    /// decoder reads before it allocates any pixel.
    fn bomb_header(width: u32, height: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend(height.to_be_bytes());
        ihdr.extend([8, 6, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        // A tiny zlib stream of zeros: what a bomb would inflate.
        chunk(
            &mut out,
            b"IDAT",
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        chunk(&mut out, b"IEND", &[]);
        out
    }

    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32fast::hash(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
}
