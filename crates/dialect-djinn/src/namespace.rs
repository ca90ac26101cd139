//! Djinn namespaces, kept as dialect records.
//!
//! A namespace is `path` (segments of letters, digits, `-`, `_`, joined by
//! `/`) owned by one user. Creating `a/b` creates `a` too. Collaborators and
//! visibility live on the root namespace and govern its whole tree, as in
//! Djinn. Records:
//!
//! * `djinn.namespace`, key `{owner_id}:{path}`: the namespace; its record
//!   `seq` is the namespace's integer id.
//! * `djinn.collaborator`, key `{root_id}:{user_id}`, owned by the
//!   collaborator (so a user's collaborations list by owner).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tintype_engine::core::{
    CoreError, NewRecord, Principal, Record, RecordCursor, RecordFilter, RecordOrder, RecordQuery,
    Scope, Timestamp, UserId,
};
use tintype_engine::Engine;

pub const NS_SCOPE: &str = "djinn.namespace";
pub const COLLAB_SCOPE: &str = "djinn.collaborator";

/// Deepest namespace tree accepted.
pub const MAX_DEPTH: usize = 20;
/// Longest namespace path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 255;

/// Who may read a namespace's images besides its owner and collaborators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only the owner and the collaborators.
    #[default]
    Private,
    /// Any signed-in user.
    Internal,
    /// Anyone.
    Public,
}

impl Visibility {
    pub fn as_str(&self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Internal => "internal",
            Visibility::Public => "public",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NsData {
    path: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    visibility: Visibility,
    parent_id: Option<i64>,
    /// `None` for a root namespace (its root is itself).
    root_id: Option<i64>,
}

/// A namespace as read from its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Namespace {
    pub id: i64,
    pub user_id: UserId,
    pub path: String,
    pub description: String,
    /// The visibility stored on this record; the root's one governs.
    pub visibility: Visibility,
    pub parent_id: Option<i64>,
    pub root_id: i64,
    pub created_at: Timestamp,
}

impl Namespace {
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    pub fn is_root(&self) -> bool {
        self.root_id == self.id
    }

    fn from_record(r: Record) -> Result<Self, CoreError> {
        let data: NsData = serde_json::from_value(r.data)
            .map_err(|e| CoreError::Internal(format!("namespace record {}: {e}", r.seq)))?;
        let user_id = r.owner_id.ok_or_else(|| {
            CoreError::Internal(format!("namespace record {} has no owner", r.seq))
        })?;
        Ok(Namespace {
            id: r.seq,
            user_id,
            root_id: data.root_id.unwrap_or(r.seq),
            path: data.path,
            description: data.description,
            visibility: data.visibility,
            parent_id: data.parent_id,
            created_at: r.created_at,
        })
    }

    fn data(&self) -> Value {
        json!(NsData {
            path: self.path.clone(),
            description: self.description.clone(),
            visibility: self.visibility,
            parent_id: self.parent_id,
            root_id: if self.is_root() {
                None
            } else {
                Some(self.root_id)
            },
        })
    }
}

fn key(owner: UserId, path: &str) -> String {
    format!("{owner}:{path}")
}

/// Whether `path` is a well-formed namespace path.
pub fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_PATH_LEN
        && path.split('/').count() <= MAX_DEPTH
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Splits `path[@owner]`.
pub fn split_ref(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once('@') {
        Some((path, owner)) => (path, Some(owner)),
        None => (s, None),
    }
}

pub async fn find(
    engine: &Engine,
    owner: UserId,
    path: &str,
) -> Result<Option<Namespace>, CoreError> {
    match engine.record(NS_SCOPE, &key(owner, path)).await? {
        Some(r) => Ok(Some(Namespace::from_record(r)?)),
        None => Ok(None),
    }
}

pub async fn by_id(engine: &Engine, id: i64) -> Result<Option<Namespace>, CoreError> {
    match engine.record_by_seq(NS_SCOPE, id).await? {
        Some(r) => Ok(Some(Namespace::from_record(r)?)),
        None => Ok(None),
    }
}

/// The namespace at `path` for `owner`, created with its missing ancestors.
/// A new root gets `visibility` (private when `None`).
pub async fn ensure(
    engine: &Engine,
    owner: UserId,
    path: &str,
    visibility: Option<Visibility>,
) -> Result<Namespace, CoreError> {
    if !valid_path(path) {
        return Err(CoreError::Invalid(format!(
            "invalid namespace path '{path}'"
        )));
    }
    let mut parent: Option<Namespace> = None;
    let mut prefix = String::new();
    for seg in path.split('/') {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(seg);
        let ns = match find(engine, owner, &prefix).await? {
            Some(ns) => ns,
            None => {
                let data = NsData {
                    path: prefix.clone(),
                    description: String::new(),
                    visibility: match &parent {
                        Some(p) => p.visibility,
                        None => visibility.unwrap_or_default(),
                    },
                    parent_id: parent.as_ref().map(|p| p.id),
                    root_id: parent.as_ref().map(|p| p.root_id),
                };
                let rec = NewRecord {
                    scope: NS_SCOPE.into(),
                    key: key(owner, &prefix),
                    owner_id: Some(owner),
                    image_id: None,
                    data: json!(data),
                    ..NewRecord::default()
                };
                match engine.insert_record(&rec).await? {
                    Ok(r) => Namespace::from_record(r)?,
                    // Created concurrently: use that one.
                    Err(_) => find(engine, owner, &prefix)
                        .await?
                        .ok_or_else(|| CoreError::Internal("namespace vanished".into()))?,
                }
            }
        };
        parent = Some(ns);
    }
    parent.ok_or_else(|| CoreError::Invalid("empty namespace path".into()))
}

/// The root of a namespace's tree (itself for a root).
pub async fn root_of(engine: &Engine, ns: &Namespace) -> Result<Namespace, CoreError> {
    if ns.is_root() {
        return Ok(ns.clone());
    }
    by_id(engine, ns.root_id)
        .await?
        .ok_or_else(|| CoreError::Internal(format!("namespace {} lost its root", ns.id)))
}

pub async fn save(engine: &Engine, ns: &Namespace) -> Result<Namespace, CoreError> {
    let r = engine
        .put_record(&NewRecord {
            scope: NS_SCOPE.into(),
            key: key(ns.user_id, &ns.path),
            owner_id: Some(ns.user_id),
            image_id: None,
            data: ns.data(),
            ..NewRecord::default()
        })
        .await?;
    Namespace::from_record(r)
}

fn collab_key(root_id: i64, user: UserId) -> String {
    format!("{root_id}:{user}")
}

pub async fn is_collaborator(
    engine: &Engine,
    root_id: i64,
    user: UserId,
) -> Result<bool, CoreError> {
    Ok(engine
        .record(COLLAB_SCOPE, &collab_key(root_id, user))
        .await?
        .is_some())
}

/// Adds a collaborator to a root namespace; false when already one.
pub async fn add_collaborator(
    engine: &Engine,
    root_id: i64,
    user: UserId,
) -> Result<bool, CoreError> {
    let rec = NewRecord {
        scope: COLLAB_SCOPE.into(),
        key: collab_key(root_id, user),
        owner_id: Some(user),
        image_id: None,
        data: json!({ "namespace_id": root_id }),
        ref_id: Some(root_id),
        ..NewRecord::default()
    };
    Ok(engine.insert_record(&rec).await?.is_ok())
}

pub async fn remove_collaborator(
    engine: &Engine,
    root_id: i64,
    user: UserId,
) -> Result<bool, CoreError> {
    engine
        .delete_record(COLLAB_SCOPE, &collab_key(root_id, user))
        .await
}

/// Users collaborating on a root namespace (from the index on the
/// collaboration records' root, `ref_id`), in the order they were added.
pub async fn collaborators(engine: &Engine, root_id: i64) -> Result<Vec<UserId>, CoreError> {
    let filter = RecordFilter {
        scope: COLLAB_SCOPE.into(),
        ref_id: Some(root_id),
        ..RecordFilter::default()
    };
    let all = every_record(engine, filter).await?;
    Ok(all.into_iter().filter_map(|r| r.owner_id).collect())
}

/// Every record that `filter` matches, in the order they were written,
/// read a page at a time (for the short lists that are wanted whole:
/// a namespace's collaborators, the admin's namespace list).
pub(crate) async fn every_record(
    engine: &Engine,
    filter: RecordFilter,
) -> Result<Vec<Record>, CoreError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = engine
            .query_records(&RecordQuery {
                filter: filter.clone(),
                order: RecordOrder::SeqAsc,
                after,
                offset: 0,
                limit: COLLAB_PAGE,
            })
            .await?;
        let n = page.len();
        after = page.last().map(|r| RecordCursor::Seq(r.record.seq));
        out.extend(page.into_iter().map(|r| r.record));
        if (n as i64) < COLLAB_PAGE {
            return Ok(out);
        }
    }
}

/// Records read per query by [`every_record`].
const COLLAB_PAGE: i64 = 1000;

/// What a caller may do with an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    None,
    Read,
    /// Read, write and delete.
    Manage,
}

/// The caller's access to an image owned by `owner` in the tree of
/// `root_id` (if namespaced). `who` is `None` for anonymous callers.
pub async fn access(
    engine: &Engine,
    who: Option<&Principal>,
    owner: UserId,
    root_id: Option<i64>,
) -> Result<Access, CoreError> {
    if let Some(p) = who {
        if p.user.id == owner || p.has(Scope::Admin) {
            return Ok(Access::Manage);
        }
    }
    let Some(root_id) = root_id else {
        return Ok(Access::None);
    };
    let Some(root) = by_id(engine, root_id).await? else {
        return Ok(Access::None);
    };
    if let Some(p) = who {
        if root.user_id == p.user.id || is_collaborator(engine, root.id, p.user.id).await? {
            return Ok(Access::Manage);
        }
    }
    Ok(match (root.visibility, who) {
        (Visibility::Public, _) => Access::Read,
        (Visibility::Internal, Some(_)) => Access::Read,
        _ => Access::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert!(valid_path("djinn"));
        assert!(valid_path("a/b-c/d_e/9"));
        assert!(!valid_path(""));
        assert!(!valid_path("a//b"));
        assert!(!valid_path("/a"));
        assert!(!valid_path("a b"));
        assert!(!valid_path(&vec!["a"; MAX_DEPTH + 1].join("/")));
    }

    #[test]
    fn refs_split_on_the_last_at() {
        assert_eq!(split_ref("djinn"), ("djinn", None));
        assert_eq!(split_ref("a/b@bob"), ("a/b", Some("bob")));
    }
}
