//! The files attached to the next message, as they upload: each starts
//! uploading when it is chosen (by the button, a paste or a drop), shows
//! its progress, can be cancelled or removed, and retried after a failure.
//! The message can be sent once every file is uploaded. Pure: the uploads
//! themselves are `uploading.rs`'s.

use common::{FileInfo, MAX_FILES_PER_MESSAGE};

/// Where one attachment is.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// `sent` of the file's bytes are on their way.
    Uploading {
        sent: u64,
    },
    Done(FileInfo),
    /// Why it failed, and whether trying again may work (the connection
    /// failed, or the server was busy; not a file over the limit).
    Failed {
        why: String,
        retry: bool,
    },
}

/// Why an upload failed, as `uploading.rs` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadError {
    pub why: String,
    /// The HTTP status (0: no answer came).
    pub status: u16,
}

impl UploadError {
    /// Trying again may work: no answer, a timeout, a rate limit, or the
    /// server's own failure. Not a file refused for what it is.
    pub fn retryable(&self) -> bool {
        matches!(self.status, 0 | 408 | 429) || self.status >= 500
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// This attachment's own key (the upload's, too).
    pub key: u32,
    pub name: String,
    pub size: u64,
    pub state: State,
}

impl Attachment {
    /// 0–100, for the progress bar.
    pub fn percent(&self) -> u32 {
        match &self.state {
            State::Uploading { sent } if self.size > 0 => {
                ((sent.saturating_mul(100)) / self.size).min(100) as u32
            }
            State::Uploading { .. } => 0,
            State::Done(_) => 100,
            State::Failed { .. } => 0,
        }
    }
}

/// The attachments of the next message, in the order they were added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tray {
    pub items: Vec<Attachment>,
    next: u32,
}

impl Tray {
    /// Adds a file about to upload: its key, or why not (a message
    /// carries at most `MAX_FILES_PER_MESSAGE`).
    pub fn add(&mut self, name: &str, size: u64) -> Result<u32, String> {
        if self.items.len() >= MAX_FILES_PER_MESSAGE {
            return Err(format!(
                "A message carries at most {MAX_FILES_PER_MESSAGE} files."
            ));
        }
        self.next += 1;
        self.items.push(Attachment {
            key: self.next,
            name: name.to_owned(),
            size,
            state: State::Uploading { sent: 0 },
        });
        Ok(self.next)
    }

    fn get(&mut self, key: u32) -> Option<&mut Attachment> {
        self.items.iter_mut().find(|a| a.key == key)
    }

    /// Progress of an upload (ignored once it is done or failed).
    pub fn progress(&mut self, key: u32, sent: u64) {
        if let Some(a) = self.get(key)
            && let State::Uploading { sent: was } = &mut a.state
        {
            *was = sent.max(*was).min(a.size);
        }
    }

    pub fn done(&mut self, key: u32, file: FileInfo) {
        if let Some(a) = self.get(key) {
            a.state = State::Done(file);
        }
    }

    pub fn failed(&mut self, key: u32, error: UploadError) {
        if let Some(a) = self.get(key)
            && matches!(a.state, State::Uploading { .. })
        {
            a.state = State::Failed {
                retry: error.retryable(),
                why: error.why,
            };
        }
    }

    /// A failed upload starts again: whether it was one.
    pub fn retry(&mut self, key: u32) -> bool {
        match self.get(key) {
            Some(a) if matches!(a.state, State::Failed { retry: true, .. }) => {
                a.state = State::Uploading { sent: 0 };
                true
            }
            _ => false,
        }
    }

    /// Takes it off the message (an upload in progress is cancelled by the
    /// caller; an uploaded file that is never sent is forgotten by the
    /// server after a day).
    pub fn remove(&mut self, key: u32) -> Option<Attachment> {
        let at = self.items.iter().position(|a| a.key == key)?;
        Some(self.items.remove(at))
    }

    /// Whether an upload is still on its way.
    pub fn uploading(&self) -> bool {
        self.items
            .iter()
            .any(|a| matches!(a.state, State::Uploading { .. }))
    }

    /// Whether one failed (and must be retried or removed first).
    pub fn has_failed(&self) -> bool {
        self.items
            .iter()
            .any(|a| matches!(a.state, State::Failed { .. }))
    }

    /// The uploaded files, in order, if every one is uploaded (none is
    /// `Some(vec![])`); `None` while one is uploading or failed.
    pub fn ready(&self) -> Option<Vec<FileInfo>> {
        self.items
            .iter()
            .map(|a| match &a.state {
                State::Done(file) => Some(file.clone()),
                _ => None,
            })
            .collect()
    }

    /// Empties the tray (the message was sent).
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// "820 B", "14 KB", "3.2 MB": a size as people read it.
pub fn human_size(bytes: u64) -> String {
    const KB: f64 = 1000.0;
    let b = bytes as f64;
    if b < KB {
        format!("{bytes} B")
    } else if b < KB * KB {
        format!("{:.0} KB", b / KB)
    } else if b < KB * KB * KB {
        let mb = b / (KB * KB);
        if mb < 10.0 {
            format!("{mb:.1} MB")
        } else {
            format!("{mb:.0} MB")
        }
    } else {
        format!("{:.1} GB", b / (KB * KB * KB))
    }
}

/// Whether a file is a picture the browser shows (and the server serves
/// inline).
pub fn is_picture(file: &FileInfo) -> bool {
    matches!(
        file.content_type.as_str(),
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// The size a picture is shown at in a message: within `max` × `max`,
/// never larger than it is, keeping its shape (so the space is kept before
/// it loads).
pub fn shown_size(width: u32, height: u32, max: u32) -> (u32, u32) {
    if width == 0 || height == 0 {
        return (max, max);
    }
    let scale = (f64::from(max) / f64::from(width.max(height))).min(1.0);
    let w = (f64::from(width) * scale).round().max(1.0) as u32;
    let h = (f64::from(height) * scale).round().max(1.0) as u32;
    (w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> FileInfo {
        FileInfo {
            id: id.into(),
            name: format!("{id}.txt"),
            size: 10,
            content_type: "text/plain".into(),
            width: None,
            height: None,
            thumbnail: false,
        }
    }

    #[test]
    fn a_message_is_ready_once_every_file_is_uploaded() {
        let mut tray = Tray::default();
        assert_eq!(tray.ready(), Some(vec![]));
        let a = tray.add("a.txt", 200).unwrap();
        let b = tray.add("b.txt", 0).unwrap();
        tray.progress(a, 50);
        assert_eq!(tray.items[0].percent(), 25);
        tray.progress(a, 10);
        assert_eq!(tray.items[0].percent(), 25, "progress never goes back");
        assert!(tray.uploading() && tray.ready().is_none());
        tray.done(b, info("b"));
        let cut = |status| UploadError {
            why: "the server cannot be reached".into(),
            status,
        };
        tray.failed(a, cut(0));
        assert!(tray.has_failed() && !tray.uploading() && tray.ready().is_none());
        tray.done(b, info("b"));
        assert!(tray.retry(a));
        assert!(!tray.retry(a), "only a failed one");
        tray.done(a, info("a"));
        tray.failed(a, cut(500));
        assert_eq!(
            tray.ready()
                .unwrap()
                .iter()
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"],
            "in the order they were added"
        );
        assert_eq!(tray.remove(a).map(|x| x.name), Some("a.txt".into()));
        assert_eq!(tray.remove(a), None);
        tray.clear();
        assert!(tray.items.is_empty());
    }

    #[test]
    fn a_file_refused_for_what_it_is_is_not_retried() {
        let mut tray = Tray::default();
        let key = tray.add("huge.bin", 30_000_000).unwrap();
        let refused = UploadError {
            why: "a file is at most 25 MiB".into(),
            status: 413,
        };
        assert!(!refused.retryable());
        tray.failed(key, refused);
        assert!(!tray.retry(key));
        assert!(tray.has_failed());
        for status in [0, 408, 429, 500, 503] {
            assert!(
                UploadError {
                    why: String::new(),
                    status
                }
                .retryable()
            );
        }
    }

    #[test]
    fn at_most_ten_files_and_keys_are_never_reused() {
        let mut tray = Tray::default();
        let keys: Vec<u32> = (0..10)
            .map(|i| tray.add(&i.to_string(), 1).unwrap())
            .collect();
        assert!(tray.add("eleven", 1).is_err());
        tray.remove(keys[0]);
        let again = tray.add("again", 1).unwrap();
        assert!(!keys.contains(&again));
    }

    #[test]
    fn sizes_read_like_people_say_them() {
        assert_eq!(human_size(820), "820 B");
        assert_eq!(human_size(14_200), "14 KB");
        assert_eq!(human_size(3_240_000), "3.2 MB");
        assert_eq!(human_size(25_000_000), "25 MB");
    }

    #[test]
    fn pictures_keep_their_shape_within_the_box() {
        assert_eq!(shown_size(1200, 600, 320), (320, 160));
        assert_eq!(shown_size(300, 900, 320), (107, 320));
        assert_eq!(shown_size(100, 50, 320), (100, 50), "never enlarged");
        assert_eq!(shown_size(0, 0, 320), (320, 320));
    }
}
