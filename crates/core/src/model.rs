use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

pub type Timestamp = DateTime<Utc>;
pub type UserId = i64;

/// Milliseconds since the epoch, the catalog's representation of time.
pub fn to_millis(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

/// A time from milliseconds we made ourselves (the clock, constants);
/// stored times are read with [`try_from_millis`].
pub fn from_millis(ms: i64) -> Timestamp {
    try_from_millis(ms).unwrap_or_default()
}

/// A time from milliseconds, `None` outside the representable range.
pub fn try_from_millis(ms: i64) -> Option<Timestamp> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

/// The current time truncated to milliseconds, so that what is stored and
/// what is returned compare equal.
pub fn now() -> Timestamp {
    from_millis(Utc::now().timestamp_millis())
}

/// What a token may do. Dialects that use other names for the same rights
/// (diaspora's `public:read`, Livingdocs' `public-api:write`) are mapped
/// onto these when a token is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Scope {
    #[serde(rename = "image:read")]
    ImageRead,
    #[serde(rename = "image:write")]
    ImageWrite,
    #[serde(rename = "image:delete")]
    ImageDelete,
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub const IMAGE: [Scope; 3] = [Scope::ImageRead, Scope::ImageWrite, Scope::ImageDelete];

    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::ImageRead => "image:read",
            Scope::ImageWrite => "image:write",
            Scope::ImageDelete => "image:delete",
            Scope::Admin => "admin",
        }
    }

    /// Parses a scope name, including the names the dialects' original
    /// systems use, into tintype's scopes.
    pub fn parse_many(s: &str) -> Option<Vec<Scope>> {
        Some(match s {
            "image:read" | "public:read" | "private:read" => vec![Scope::ImageRead],
            "image:write" | "public-api:write" => vec![Scope::ImageWrite],
            "image:delete" => vec![Scope::ImageDelete],
            "public:modify" | "private:modify" => vec![Scope::ImageWrite, Scope::ImageDelete],
            "admin" => vec![Scope::Admin],
            _ => return None,
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match Scope::parse_many(s).as_deref() {
            Some([one]) => Ok(*one),
            _ => Err(format!(
                "unknown scope '{s}' (expected image:read, image:write, image:delete or admin)"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: Option<String>,
    pub created_at: Timestamp,
    /// Images per 24 hours; 0 means unlimited.
    pub images_per_day: i64,
    /// The user's profile picture (an image id), if any.
    pub profile_image_id: Option<String>,
    /// Secret used to sign webhooks sent on this user's behalf.
    #[serde(skip_serializing)]
    pub webhook_secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Token {
    pub id: String,
    pub user_id: UserId,
    pub scopes: Vec<Scope>,
    pub created_at: Timestamp,
    pub revoked: bool,
}

/// Who is calling: the user behind a valid token and what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub user: User,
    pub token_id: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    pub fn require(&self, scope: Scope) -> Result<(), crate::CoreError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(crate::CoreError::Forbidden(scope.to_string()))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    Picture,
    Disk,
}

impl ImageKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ImageKind::Picture => "picture",
            ImageKind::Disk => "disk",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "picture" => Some(ImageKind::Picture),
            "disk" => Some(ImageKind::Disk),
            _ => None,
        }
    }
}

/// The facts about a stored blob that an image row records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub sha256: String,
    pub size: i64,
    pub kind: ImageKind,
    /// Short format name: jpeg, png, gif, webp, svg, qcow2.
    pub format: String,
    pub content_type: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub orientation: Option<i64>,
    pub exif: Option<Map<String, Value>>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// A small integer, unique and increasing, for dialects with integer ids.
    pub seq: i64,
    pub id: String,
    pub owner_id: UserId,
    pub name: Option<String>,
    pub content: Content,
    pub metadata: Map<String, Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When every preset variant had been rendered.
    pub processed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewImage {
    pub id: String,
    pub owner_id: UserId,
    pub name: Option<String>,
    pub content: Content,
    pub metadata: Map<String, Value>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub image_id: String,
    pub preset: String,
    pub sha256: String,
    pub content_type: String,
    pub width: i64,
    pub height: i64,
    pub size: i64,
    pub created_at: Timestamp,
}

/// A row a dialect keeps about its own concepts (a PopIt document, a
/// Fulcrum access key, a Djinn namespace), addressed by (scope, key) and
/// optionally tied to an owner and an image. The core stores it; only the
/// dialect that wrote it knows what `data` means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: i64,
    pub scope: String,
    pub key: String,
    pub owner_id: Option<UserId>,
    pub image_id: Option<String>,
    pub data: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Starts at 1 and grows by one on every write: the token of an
    /// optimistic update ([`crate::Catalog::update_record_if`]).
    #[serde(default)]
    pub version: i64,
}

/// A record to write. Besides its address (scope, key), owner and image, a
/// record carries typed, indexed keys that the dialect sets so that the
/// catalog answers its listings, searches and filters from indexes
/// ([`crate::RecordQuery`]); what each means is the dialect's business.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewRecord {
    pub scope: String,
    pub key: String,
    pub owner_id: Option<UserId>,
    pub image_id: Option<String>,
    pub data: Value,
    /// A secondary key matched exactly or by substring (a name, an access
    /// key, a foreign id). At most [`MAX_RECORD_KEY`] bytes are kept.
    pub skey: Option<String>,
    /// A second secondary key matched exactly (a form id).
    pub skey2: Option<String>,
    /// An integer reference (a namespace root, an image's seq).
    pub ref_id: Option<i64>,
    /// A sortable time in milliseconds (an image's creation time); sorts
    /// ties by `ref_id`.
    pub sort_at: Option<i64>,
}

/// Longest secondary key stored (longer ones are cut on a char boundary).
pub const MAX_RECORD_KEY: usize = 512;

/// Which records a [`RecordQuery`] selects. Every condition is answered
/// from an index on (scope, owner), (scope, skey), (scope, skey2),
/// (scope, ref_id) or (scope, owner, sort_at, ref_id).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordFilter {
    pub scope: String,
    /// Records of this owner...
    pub owner: Option<UserId>,
    /// ...or (with `owner`) records whose `ref_id` is the `ref_id` of a
    /// record of scope `.0` owned by `.1` (a membership: "images in the
    /// namespaces I collaborate on"). Alone, it restricts to those records.
    pub or_ref_of: Option<(String, UserId)>,
    pub skey: Option<String>,
    pub skey2: Option<String>,
    /// Case-insensitive substring of `skey` (stored lower case by the
    /// dialects that search).
    pub skey_contains: Option<String>,
    pub ref_id: Option<i64>,
    /// Only records whose image exists and is (not) processed.
    pub image_processed: Option<bool>,
    /// Only records whose image exists (joined).
    pub with_image: bool,
}

/// The order of a [`RecordQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordOrder {
    /// Insertion order.
    #[default]
    SeqAsc,
    SeqDesc,
    /// By (sort_at, ref_id), newest first.
    SortDesc,
    /// By (sort_at, ref_id), oldest first.
    SortAsc,
}

/// Where a page starts, exclusive: a seq for the seq orders, a
/// (sort_at, ref_id) position for the sort orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordCursor {
    Seq(i64),
    Sort(i64, i64),
}

/// One page of records with their images.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordQuery {
    pub filter: RecordFilter,
    pub order: RecordOrder,
    /// Keyset pagination: strictly after this position in `order`.
    pub after: Option<RecordCursor>,
    /// Offset pagination, for wire formats that number their pages: the
    /// offset walks an index (no rows are read for the skipped entries).
    pub offset: i64,
    pub limit: i64,
}

/// A record and the image it belongs to (when it has one and it exists).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    pub record: Record,
    pub image: Option<Image>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: Value,
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: Timestamp,
    pub lease_until: Option<Timestamp>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub kind: String,
    pub payload: Value,
    pub run_at: Timestamp,
    pub max_attempts: i64,
    /// At most one queued job per dedup key (a running one does not count:
    /// work queued after it started must run again).
    pub dedup_key: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    pub queued: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
}

/// A new random image id: 32 lowercase hex digits, time-ordered (UUIDv7).
pub fn new_image_id(uuid_v7_bytes: [u8; 16]) -> String {
    let mut s = String::with_capacity(32);
    for b in uuid_v7_bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_with_dialect_aliases() {
        assert_eq!("image:read".parse::<Scope>(), Ok(Scope::ImageRead));
        assert_eq!(
            Scope::parse_many("public:modify"),
            Some(vec![Scope::ImageWrite, Scope::ImageDelete])
        );
        assert!("root".parse::<Scope>().is_err());
    }

    #[test]
    fn millis_round_trip() {
        let t = now();
        assert_eq!(from_millis(to_millis(t)), t);
    }
}
