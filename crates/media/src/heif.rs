//! HEIC/HEIF (HEVC) and AVIF stills through libheif (Debian's libheif 1.15,
//! with libde265 and dav1d to decode, x265 and libaom to encode).
//!
//! Bounded like every other decoder: the primary image's size is checked
//! against [`Limits`] (and libheif's own size limit set from them) before
//! anything is decoded; libheif applies the file's rotation, mirror and
//! crop properties, so what it hands out is in display orientation (the
//! EXIF orientation of a HEIF file is informative only and is not applied
//! again). 10-bit and 12-bit sources are reduced to 8 bits by libheif.

use std::ffi::{c_int, c_void, CStr, CString};
use std::ptr;

use libheif_sys as lh;

use crate::exif::MAX_EXIF_BYTES;
use crate::{colour, Format, Limits, MediaError};

/// Largest ICC profile read from a file.
pub(crate) const MAX_ICC_BYTES: usize = 4 * 1024 * 1024;

/// What the headers of a HEIF file say about its primary image.
pub(crate) struct HeifInfo {
    /// Display size (rotation and crop applied).
    pub width: u32,
    pub height: u32,
    /// The EXIF block from its TIFF header on.
    pub exif: Option<Vec<u8>>,
}

/// Decoded pixels, 8-bit RGB or RGBA, rows packed, display orientation.
pub(crate) struct HeifPixels {
    pub width: u32,
    pub height: u32,
    pub alpha: bool,
    pub data: Vec<u8>,
    /// The embedded ICC profile.
    pub icc: Option<Vec<u8>>,
}

fn check(e: lh::heif_error, what: &str) -> Result<(), MediaError> {
    if e.code == lh::heif_error_code_heif_error_Ok {
        return Ok(());
    }
    let message = if e.message.is_null() {
        String::from("unknown error")
    } else {
        // SAFETY: libheif's messages are static, NUL-terminated strings.
        unsafe { CStr::from_ptr(e.message) }
            .to_string_lossy()
            .into_owned()
    };
    Err(MediaError::Corrupt(format!("HEIF {what}: {message}")))
}

struct Context(*mut lh::heif_context);

impl Context {
    fn new() -> Result<Self, MediaError> {
        // SAFETY: plain allocation; null is checked.
        let ctx = unsafe { lh::heif_context_alloc() };
        if ctx.is_null() {
            return Err(MediaError::Encode("libheif could not allocate".into()));
        }
        Ok(Context(ctx))
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: allocated by heif_context_alloc, freed once.
        unsafe { lh::heif_context_free(self.0) }
    }
}

struct Handle(*mut lh::heif_image_handle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a handle libheif gave us, released once.
        unsafe { lh::heif_image_handle_release(self.0) }
    }
}

struct Image(*mut lh::heif_image);

impl Drop for Image {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: an image libheif gave or made for us, released once.
            unsafe { lh::heif_image_release(self.0) }
        }
    }
}

/// A file read by libheif: `bytes` must outlive it (read without a copy).
struct Opened<'a> {
    handle: Handle,
    _ctx: Context,
    _bytes: std::marker::PhantomData<&'a [u8]>,
}

fn open<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Opened<'a>, MediaError> {
    let ctx = Context::new()?;
    let side = limits.max_width.max(limits.max_height);
    // SAFETY: ctx is live; `bytes` outlives the context (Opened borrows it).
    unsafe {
        lh::heif_context_set_maximum_image_size_limit(
            ctx.0,
            c_int::try_from(side).unwrap_or(c_int::MAX),
        );
        check(
            lh::heif_context_read_from_memory_without_copy(
                ctx.0,
                bytes.as_ptr().cast::<c_void>(),
                bytes.len(),
                ptr::null(),
            ),
            "cannot be read",
        )?;
    }
    let mut handle = ptr::null_mut();
    // SAFETY: ctx is live; the handle is released by Handle's Drop.
    check(
        unsafe { lh::heif_context_get_primary_image_handle(ctx.0, &mut handle) },
        "has no primary image",
    )?;
    if handle.is_null() {
        return Err(MediaError::Corrupt("HEIF has no primary image".into()));
    }
    Ok(Opened {
        handle: Handle(handle),
        _ctx: ctx,
        _bytes: std::marker::PhantomData,
    })
}

/// Reads the headers of the primary image: display size and EXIF.
pub(crate) fn info(bytes: &[u8], limits: &Limits) -> Result<HeifInfo, MediaError> {
    let opened = open(bytes, limits)?;
    let (width, height) = handle_size(&opened.handle);
    Ok(HeifInfo {
        width,
        height,
        // SAFETY: a live handle.
        exif: unsafe { exif_block(opened.handle.0) },
    })
}

/// The colour of an image as an ICC profile: its own (`prof` or `rICC`),
/// or one made from its `nclx` code points ([`colour::nclx_profile`]);
/// `None` for none, for sRGB, and for a profile over the size limit.
fn icc_of(handle: &Handle) -> Option<Vec<u8>> {
    let h = handle.0;
    // SAFETY: h is a live handle; the buffer is sized from libheif's
    // answer, bounded before allocation.
    unsafe {
        match lh::heif_image_handle_get_color_profile_type(h) {
            lh::heif_color_profile_type_heif_color_profile_type_prof
            | lh::heif_color_profile_type_heif_color_profile_type_rICC => {
                let size = lh::heif_image_handle_get_raw_color_profile_size(h);
                if size == 0 || size > MAX_ICC_BYTES {
                    return None;
                }
                let mut buf = vec![0u8; size];
                check(
                    lh::heif_image_handle_get_raw_color_profile(
                        h,
                        buf.as_mut_ptr().cast::<c_void>(),
                    ),
                    "colour profile",
                )
                .ok()
                .map(|()| buf)
            }
            lh::heif_color_profile_type_heif_color_profile_type_nclx => {
                let mut nclx: *mut lh::heif_color_profile_nclx = ptr::null_mut();
                let read = check(
                    lh::heif_image_handle_get_nclx_color_profile(h, &mut nclx),
                    "nclx",
                );
                if nclx.is_null() {
                    return None;
                }
                // Copied out, then freed once.
                let codes = ((*nclx).color_primaries, (*nclx).transfer_characteristics);
                lh::heif_nclx_color_profile_free(nclx);
                read.ok()?;
                let (Ok(primaries), Ok(transfer)) =
                    (u16::try_from(codes.0), u16::try_from(codes.1))
                else {
                    return None;
                };
                colour::nclx_profile(primaries, transfer)
            }
            _ => None,
        }
    }
}

/// The first EXIF block, from its TIFF header on (a HEIF EXIF item starts
/// with the offset of that header).
unsafe fn exif_block(h: *mut lh::heif_image_handle) -> Option<Vec<u8>> {
    let filter = c"Exif";
    let count = lh::heif_image_handle_get_number_of_metadata_blocks(h, filter.as_ptr());
    if count < 1 {
        return None;
    }
    let mut id: lh::heif_item_id = 0;
    if lh::heif_image_handle_get_list_of_metadata_block_IDs(h, filter.as_ptr(), &mut id, 1) < 1 {
        return None;
    }
    let size = lh::heif_image_handle_get_metadata_size(h, id);
    if size < 4 || size as u64 > MAX_EXIF_BYTES + 4 {
        return None;
    }
    let mut buf = vec![0u8; size];
    check(
        lh::heif_image_handle_get_metadata(h, id, buf.as_mut_ptr().cast::<c_void>()),
        "EXIF",
    )
    .ok()?;
    let offset = buf
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)?;
    buf.get(4usize.checked_add(offset)?..).map(<[u8]>::to_vec)
}

fn options() -> Result<*mut lh::heif_decoding_options, MediaError> {
    // SAFETY: allocated by libheif at its own size; freed by the caller.
    let opts = unsafe { lh::heif_decoding_options_alloc() };
    if opts.is_null() {
        return Err(MediaError::Encode("libheif could not allocate".into()));
    }
    // SAFETY: fields of version 2 and later; libheif 1.15 writes version >= 5.
    unsafe {
        if (*opts).version >= 2 {
            (*opts).convert_hdr_to_8bit = 1;
        }
    }
    Ok(opts)
}

fn decode_raw(
    handle: &Handle,
    colorspace: lh::heif_colorspace,
    chroma: lh::heif_chroma,
) -> Result<Image, MediaError> {
    let opts = options()?;
    let mut img = ptr::null_mut();
    // SAFETY: live handle and options; the image is released by Image's Drop.
    let result = unsafe { lh::heif_decode_image(handle.0, &mut img, colorspace, chroma, opts) };
    // SAFETY: allocated in options(), freed once.
    unsafe { lh::heif_decoding_options_free(opts) };
    let img = Image(img);
    check(result, "cannot be decoded")?;
    if img.0.is_null() {
        return Err(MediaError::Corrupt("HEIF cannot be decoded".into()));
    }
    Ok(img)
}

/// Decodes every pixel of the primary image in its own colour space (the
/// upload check).
pub(crate) fn check_decodes(bytes: &[u8], limits: &Limits) -> Result<(), MediaError> {
    let opened = open(bytes, limits)?;
    let (w, h) = handle_size(&opened.handle);
    limits.check(w, h)?;
    decode_raw(
        &opened.handle,
        lh::heif_colorspace_heif_colorspace_undefined,
        lh::heif_chroma_heif_chroma_undefined,
    )
    .map(drop)
}

fn handle_size(handle: &Handle) -> (u32, u32) {
    // SAFETY: a live handle.
    unsafe {
        (
            u32::try_from(lh::heif_image_handle_get_width(handle.0)).unwrap_or(0),
            u32::try_from(lh::heif_image_handle_get_height(handle.0)).unwrap_or(0),
        )
    }
}

/// Decodes the primary image to 8-bit RGB(A) in display orientation.
pub(crate) fn decode(bytes: &[u8], limits: &Limits) -> Result<HeifPixels, MediaError> {
    let opened = open(bytes, limits)?;
    let (w, h) = handle_size(&opened.handle);
    limits.check(w, h)?;
    // SAFETY: a live handle.
    let alpha = unsafe { lh::heif_image_handle_has_alpha_channel(opened.handle.0) != 0 };
    let (chroma, ch) = if alpha {
        (lh::heif_chroma_heif_chroma_interleaved_RGBA, 4usize)
    } else {
        (lh::heif_chroma_heif_chroma_interleaved_RGB, 3usize)
    };
    let img = decode_raw(
        &opened.handle,
        lh::heif_colorspace_heif_colorspace_RGB,
        chroma,
    )?;
    let channel = lh::heif_channel_heif_channel_interleaved;
    let mut stride: c_int = 0;
    // SAFETY: a live image; the plane is read only within the bounds below.
    let (iw, ih, bits, plane) = unsafe {
        (
            lh::heif_image_get_width(img.0, channel),
            lh::heif_image_get_height(img.0, channel),
            lh::heif_image_get_bits_per_pixel(img.0, channel),
            lh::heif_image_get_plane_readonly(img.0, channel, &mut stride),
        )
    };
    let (Ok(iw), Ok(ih), Ok(stride)) = (
        usize::try_from(iw),
        usize::try_from(ih),
        usize::try_from(stride),
    ) else {
        return Err(MediaError::Corrupt(
            "HEIF decoded to an invalid image".into(),
        ));
    };
    let row = iw * ch;
    if plane.is_null() || iw == 0 || ih == 0 || stride < row || bits != (8 * ch) as c_int {
        return Err(MediaError::Corrupt(
            "HEIF decoded to an invalid image".into(),
        ));
    }
    let (w32, h32) = (
        u32::try_from(iw).unwrap_or(u32::MAX),
        u32::try_from(ih).unwrap_or(u32::MAX),
    );
    limits.check(w32, h32)?;
    let mut data = Vec::with_capacity(row * ih);
    for y in 0..ih {
        // SAFETY: libheif's plane holds `ih` rows of `stride` bytes, and
        // each row has at least `row` bytes (checked above).
        let line = unsafe { std::slice::from_raw_parts(plane.add(y * stride), row) };
        data.extend_from_slice(line);
    }
    Ok(HeifPixels {
        width: w32,
        height: h32,
        alpha,
        data,
        icc: icc_of(&opened.handle),
    })
}

/// What [`encode_still`] writes.
#[derive(Debug, Clone)]
pub struct StillOptions<'a> {
    /// 1 to 100.
    pub quality: u8,
    /// 8, 10 or 12: samples of `pixels` above 8 bits are big numbers, see
    /// [`encode_still`].
    pub bits: u8,
    pub icc: Option<&'a [u8]>,
    /// A TIFF block (from its "II"/"MM" header on).
    pub exif: Option<&'a [u8]>,
    /// libaom's speed (0 slowest to 9 fastest) for AVIF.
    pub speed: u8,
    /// `nclx` code points (H.273) to write: colour primaries, transfer
    /// characteristics, matrix coefficients (full range). `None`: libheif's
    /// default.
    pub nclx: Option<(u16, u16, u16)>,
}

impl Default for StillOptions<'_> {
    fn default() -> Self {
        StillOptions {
            quality: 60,
            bits: 8,
            icc: None,
            exif: None,
            speed: 8,
            nclx: None,
        }
    }
}

struct Encoder(*mut lh::heif_encoder);

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: an encoder libheif gave us, released once.
        unsafe { lh::heif_encoder_release(self.0) }
    }
}

struct EncodingOptions(*mut lh::heif_encoding_options);

impl Drop for EncodingOptions {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: allocated by heif_encoding_options_alloc, freed once.
            unsafe { lh::heif_encoding_options_free(self.0) }
        }
    }
}

unsafe extern "C" fn write_to_vec(
    _ctx: *mut lh::heif_context,
    data: *const c_void,
    size: usize,
    userdata: *mut c_void,
) -> lh::heif_error {
    // SAFETY: `userdata` is the Vec handed to heif_context_write below, and
    // libheif gives `size` readable bytes at `data`.
    let out = &mut *userdata.cast::<Vec<u8>>();
    if !data.is_null() && size > 0 {
        out.extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), size));
    }
    lh::heif_error {
        code: lh::heif_error_code_heif_error_Ok,
        subcode: 0,
        message: c"ok".as_ptr(),
    }
}

/// Writes a HEIC (HEVC) or AVIF still: `pixels` are packed RGB or RGBA
/// rows, 8-bit, or for 10 and 12 bits 16-bit native-endian samples given as
/// bytes (2 per sample). The output formats and the tests use it.
pub fn encode_still(
    format: Format,
    pixels: &[u8],
    width: u32,
    height: u32,
    alpha: bool,
    opts: &StillOptions<'_>,
) -> Result<Vec<u8>, MediaError> {
    let enc_err = |m: &str| MediaError::Encode(format!("HEIF encoder: {m}"));
    let compression = match format {
        Format::Heic => lh::heif_compression_format_heif_compression_HEVC,
        Format::Avif => lh::heif_compression_format_heif_compression_AV1,
        _ => return Err(enc_err("only HEIC and AVIF")),
    };
    if format == Format::Avif && opts.bits == 10 {
        // libheif 1.15 hands libaom settings for 10 bits that end the
        // process on an assertion inside libaom (12 bits are fine).
        return Err(enc_err("10-bit AVIF is not written (12-bit is)"));
    }
    if !matches!(opts.bits, 8 | 10 | 12) {
        return Err(enc_err("8, 10 or 12 bits"));
    }
    let ch = if alpha { 4usize } else { 3 };
    let wide = opts.bits > 8;
    let bytes_per_sample = if wide { 2 } else { 1 };
    let row = width as usize * ch * bytes_per_sample;
    if width == 0 || height == 0 || pixels.len() != row * height as usize {
        return Err(enc_err("the pixel buffer does not match the size"));
    }
    let chroma = match (alpha, wide) {
        (false, false) => lh::heif_chroma_heif_chroma_interleaved_RGB,
        (true, false) => lh::heif_chroma_heif_chroma_interleaved_RGBA,
        (false, true) => {
            if cfg!(target_endian = "little") {
                lh::heif_chroma_heif_chroma_interleaved_RRGGBB_LE
            } else {
                lh::heif_chroma_heif_chroma_interleaved_RRGGBB_BE
            }
        }
        (true, true) => {
            if cfg!(target_endian = "little") {
                lh::heif_chroma_heif_chroma_interleaved_RRGGBBAA_LE
            } else {
                lh::heif_chroma_heif_chroma_interleaved_RRGGBBAA_BE
            }
        }
    };
    let (w, h) = (
        c_int::try_from(width).map_err(|_| enc_err("too wide"))?,
        c_int::try_from(height).map_err(|_| enc_err("too high"))?,
    );
    let ctx = Context::new()?;
    let mut img = Image(ptr::null_mut());
    // SAFETY: every pointer below is live; the plane is written within
    // `height` rows of `stride` bytes, each at least `row` long (checked).
    unsafe {
        check(
            lh::heif_image_create(
                w,
                h,
                lh::heif_colorspace_heif_colorspace_RGB,
                chroma,
                &mut img.0,
            ),
            "cannot create an image",
        )
        .map_err(|e| enc_err(&e.to_string()))?;
        check(
            lh::heif_image_add_plane(
                img.0,
                lh::heif_channel_heif_channel_interleaved,
                w,
                h,
                c_int::from(opts.bits),
            ),
            "cannot add a plane",
        )
        .map_err(|e| enc_err(&e.to_string()))?;
        let mut stride: c_int = 0;
        let plane = lh::heif_image_get_plane(
            img.0,
            lh::heif_channel_heif_channel_interleaved,
            &mut stride,
        );
        let stride = usize::try_from(stride).unwrap_or(0);
        if plane.is_null() || stride < row {
            return Err(enc_err("no plane to write"));
        }
        for (y, line) in pixels.chunks_exact(row).enumerate() {
            ptr::copy_nonoverlapping(line.as_ptr(), plane.add(y * stride), row);
        }
        if let Some(icc) = opts.icc {
            check(
                lh::heif_image_set_raw_color_profile(
                    img.0,
                    c"prof".as_ptr(),
                    icc.as_ptr().cast::<c_void>(),
                    icc.len(),
                ),
                "colour profile",
            )
            .map_err(|e| enc_err(&e.to_string()))?;
        }
        if let Some((primaries, transfer, matrix)) = opts.nclx {
            let nclx = lh::heif_nclx_color_profile_alloc();
            if nclx.is_null() {
                return Err(enc_err("libheif could not allocate"));
            }
            let set = check(
                lh::heif_nclx_color_profile_set_color_primaries(nclx, primaries),
                "nclx primaries",
            )
            .and_then(|()| {
                check(
                    lh::heif_nclx_color_profile_set_transfer_characteristics(nclx, transfer),
                    "nclx transfer",
                )
            })
            .and_then(|()| {
                check(
                    lh::heif_nclx_color_profile_set_matrix_coefficients(nclx, matrix),
                    "nclx matrix",
                )
            })
            .and_then(|()| {
                (*nclx).full_range_flag = 1;
                check(lh::heif_image_set_nclx_color_profile(img.0, nclx), "nclx")
            });
            lh::heif_nclx_color_profile_free(nclx);
            set.map_err(|e| enc_err(&e.to_string()))?;
        }
        let mut encoder = Encoder(ptr::null_mut());
        check(
            lh::heif_context_get_encoder_for_format(ctx.0, compression, &mut encoder.0),
            "no encoder",
        )
        .map_err(|e| enc_err(&e.to_string()))?;
        if encoder.0.is_null() {
            return Err(enc_err("no encoder for this format"));
        }
        check(
            lh::heif_encoder_set_lossy_quality(encoder.0, c_int::from(opts.quality.min(100))),
            "quality",
        )
        .map_err(|e| enc_err(&e.to_string()))?;
        if format == Format::Avif {
            let speed = CString::new(opts.speed.min(9).to_string()).unwrap_or_default();
            // libaom's speed; an encoder without it keeps its default.
            let _ = lh::heif_encoder_set_parameter(encoder.0, c"speed".as_ptr(), speed.as_ptr());
            // Small outputs gain nothing from threads of their own.
            let _ = lh::heif_encoder_set_parameter(encoder.0, c"threads".as_ptr(), c"1".as_ptr());
        }
        let options = EncodingOptions(lh::heif_encoding_options_alloc());
        if options.0.is_null() {
            return Err(enc_err("libheif could not allocate"));
        }
        if opts.nclx.is_some() && (*options.0).version >= 4 {
            // libheif leaves the nclx box out of HEIC files unless asked.
            (*options.0).macOS_compatibility_workaround_no_nclx_profile = 0;
        }
        let mut out_handle = ptr::null_mut();
        check(
            lh::heif_context_encode_image(ctx.0, img.0, encoder.0, options.0, &mut out_handle),
            "encoding",
        )
        .map_err(|e| enc_err(&e.to_string()))?;
        let out_handle = Handle(out_handle);
        if let Some(exif) = opts.exif {
            let len = c_int::try_from(exif.len()).map_err(|_| enc_err("EXIF too large"))?;
            check(
                lh::heif_context_add_exif_metadata(
                    ctx.0,
                    out_handle.0,
                    exif.as_ptr().cast::<c_void>(),
                    len,
                ),
                "EXIF",
            )
            .map_err(|e| enc_err(&e.to_string()))?;
        }
        let mut out: Vec<u8> = Vec::new();
        let mut writer = lh::heif_writer {
            writer_api_version: 1,
            write: Some(write_to_vec),
        };
        check(
            lh::heif_context_write(
                ctx.0,
                &mut writer,
                (&mut out as *mut Vec<u8>).cast::<c_void>(),
            ),
            "writing",
        )
        .map_err(|e| enc_err(&e.to_string()))?;
        Ok(out)
    }
}
