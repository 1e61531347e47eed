//! Thumbnails of uploaded images: decoded and scaled on the blocking pool,
//! at most `WORKERS` at once, never on the async workers that move
//! messages. Decoding is bounded before it starts: an image whose header
//! claims more than `MAX_PIXELS` is refused (a decompression bomb is a
//! small file that claims a huge image), and the decoder's allocations are
//! capped besides.

use std::io;
use std::path::PathBuf;

use image::{ImageFormat, ImageReader, Limits};
use tokio::sync::Semaphore;

/// Images larger than this (in pixels, by their header) are refused.
pub const MAX_PIXELS: u64 = 50_000_000;
/// A thumbnail fits in this square; an image that does already has none
/// (it is its own thumbnail).
pub const EDGE: u32 = 480;
/// What a decoder may allocate (an image of `MAX_PIXELS` in 8-bit RGBA
/// is 200 MB).
const MAX_ALLOC: u64 = 256 * 1024 * 1024;
/// Thumbnails made at once on this node.
static WORKERS: Semaphore = Semaphore::const_new(2);

/// Whether an image of this size may be stored (its header's claim).
pub fn acceptable(width: u32, height: u32) -> bool {
    u64::from(width) * u64::from(height) <= MAX_PIXELS
}

/// Whether an image of this size gets a thumbnail.
pub fn wanted(width: u32, height: u32) -> bool {
    width > EDGE || height > EDGE
}

/// Writes a thumbnail of the image at `source` to `dest`: JPEG, or PNG if
/// it has transparency. `Ok(false)`: it could not be decoded within the
/// limits (it is kept as a file, without a thumbnail).
pub async fn make(source: PathBuf, dest: PathBuf) -> io::Result<bool> {
    let _worker = WORKERS.acquire().await.map_err(io::Error::other)?;
    tokio::task::spawn_blocking(move || make_now(&source, &dest))
        .await
        .map_err(io::Error::other)?
}

fn make_now(source: &std::path::Path, dest: &std::path::Path) -> io::Result<bool> {
    let mut reader = ImageReader::open(source)?.with_guessed_format()?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    limits.max_image_width = Some(50_000);
    limits.max_image_height = Some(50_000);
    reader.limits(limits);
    let image = match reader.decode() {
        Ok(image) => image,
        Err(err) => {
            tracing::info!(%err, "no thumbnail: the image could not be decoded");
            return Ok(false);
        }
    };
    let small = image.thumbnail(EDGE, EDGE);
    let mut out = io::BufWriter::new(std::fs::File::create(dest)?);
    let written = if small.color().has_alpha() {
        small.write_to(&mut out, ImageFormat::Png)
    } else {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82);
        small.to_rgb8().write_with_encoder(encoder)
    };
    written.map_err(io::Error::other)?;
    let file = out.into_inner().map_err(io::Error::other)?;
    file.sync_all()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bomb_is_refused_by_its_header_and_small_images_need_no_thumbnail() {
        assert!(acceptable(7_000, 7_000));
        assert!(!acceptable(100_000, 100_000));
        assert!(!acceptable(u32::MAX, u32::MAX));
        assert!(!wanted(480, 300));
        assert!(wanted(481, 10));
    }

    #[tokio::test]
    async fn a_large_image_gets_a_bounded_jpeg_and_a_transparent_one_a_png() {
        let dir = std::env::temp_dir().join(format!("hearth-thumb-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (source, dest) = (dir.join("in.png"), dir.join("out"));
        image::RgbImage::from_pixel(1200, 600, image::Rgb([200, 30, 30]))
            .save(&source)
            .unwrap();
        assert!(make(source.clone(), dest.clone()).await.unwrap());
        let thumb = ImageReader::open(&dest)
            .unwrap()
            .with_guessed_format()
            .unwrap()
            .decode()
            .unwrap();
        assert_eq!((thumb.width(), thumb.height()), (480, 240));
        assert_eq!(
            infer::get_from_path(&dest).unwrap().unwrap().mime_type(),
            "image/jpeg"
        );

        image::RgbaImage::from_pixel(300, 900, image::Rgba([0, 0, 0, 0]))
            .save(&source)
            .unwrap();
        assert!(make(source.clone(), dest.clone()).await.unwrap());
        assert_eq!(
            infer::get_from_path(&dest).unwrap().unwrap().mime_type(),
            "image/png"
        );

        std::fs::write(&source, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        assert!(!make(source, dest).await.unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
