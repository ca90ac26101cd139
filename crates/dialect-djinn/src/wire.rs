//! Djinn's JSON shapes: the image, user and namespace objects, and the
//! image record the dialect keeps beside each stored disk.

use crate::namespace::{self, Namespace};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use tintype_engine::core::{CoreError, Record, Timestamp, User, UserId};
use tintype_http::AppState;

/// Scope of the record kept per Djinn image (tied to the image, so it goes
/// with it). Its key makes names unique: `n:{namespace_id}:{name}` inside a
/// namespace, `u:{user_id}:{name}` outside one.
pub const IMAGE_SCOPE: &str = "djinn.image";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageData {
    /// The image's integer id (`Image.seq`).
    pub id: i64,
    pub name: String,
    pub author_id: UserId,
    pub user_id: UserId,
    pub namespace_id: Option<i64>,
    /// Root of the namespace's tree, which holds collaborators and visibility.
    pub root_id: Option<i64>,
    pub created_at: Timestamp,
}

impl ImageData {
    pub fn from_record(r: &Record) -> Result<Self, CoreError> {
        serde_json::from_value(r.data.clone())
            .map_err(|e| CoreError::Internal(format!("djinn image record {}: {e}", r.seq)))
    }
}

pub fn name_key(namespace_id: Option<i64>, user_id: UserId, name: &str) -> String {
    match namespace_id {
        Some(ns) => format!("n:{ns}:{name}"),
        None => format!("u:{user_id}:{name}"),
    }
}

pub fn timestamp(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The fields every JSON form of a namespace has (`root`: the root of its
/// tree, whose visibility it has).
pub fn namespace_fields(ns: &Namespace, root: &Namespace) -> Map<String, Value> {
    Map::from_iter([
        ("id".to_string(), json!(ns.id)),
        ("user_id".to_string(), json!(ns.user_id)),
        ("root_id".to_string(), json!(ns.root_id)),
        ("parent_id".to_string(), json!(ns.parent_id)),
        ("name".to_string(), json!(ns.name())),
        ("path".to_string(), json!(ns.path)),
        ("description".to_string(), json!(ns.description)),
        ("visibility".to_string(), json!(root.visibility.as_str())),
        ("created_at".to_string(), json!(timestamp(&ns.created_at))),
    ])
}

pub fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "email": u.email.clone().unwrap_or_default(),
        "username": u.name,
        "created_at": timestamp(&u.created_at),
    })
}

/// Renders objects, looking each user and namespace up once per response.
pub struct Renderer<'a> {
    state: &'a AppState,
    users: HashMap<UserId, Option<User>>,
    namespaces: HashMap<i64, Value>,
}

impl<'a> Renderer<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Renderer {
            state,
            users: HashMap::new(),
            namespaces: HashMap::new(),
        }
    }

    async fn user(&mut self, id: UserId) -> Result<Option<User>, CoreError> {
        if let Some(u) = self.users.get(&id) {
            return Ok(u.clone());
        }
        let u = self.state.engine.user_by_id(id).await?;
        self.users.insert(id, u.clone());
        Ok(u)
    }

    pub async fn namespace_json(&mut self, ns: &Namespace) -> Result<Value, CoreError> {
        let root = namespace::root_of(&self.state.engine, ns).await?;
        let owner = self
            .user(ns.user_id)
            .await?
            .map(|u| u.name)
            .unwrap_or_default();
        let mut fields = namespace_fields(ns, &root);
        fields.insert(
            "url".into(),
            json!(self.state.url(&format!("/n/{owner}/{}", ns.path))),
        );
        Ok(Value::Object(fields))
    }

    async fn namespace(&mut self, id: i64) -> Result<Value, CoreError> {
        if let Some(v) = self.namespaces.get(&id) {
            return Ok(v.clone());
        }
        let v = match namespace::by_id(&self.state.engine, id).await? {
            Some(ns) => self.namespace_json(&ns).await?,
            None => Value::Null,
        };
        self.namespaces.insert(id, v.clone());
        Ok(v)
    }

    pub async fn image(&mut self, d: &ImageData) -> Result<Value, CoreError> {
        let author = self.user(d.author_id).await?.as_ref().map(user_json);
        let user = self.user(d.user_id).await?.as_ref().map(user_json);
        let namespace = match d.namespace_id {
            Some(id) => self.namespace(id).await?,
            None => Value::Null,
        };
        Ok(json!({
            "id": d.id,
            "author_id": d.author_id,
            "user_id": d.user_id,
            "namespace_id": d.namespace_id,
            "driver": "qemu",
            "name": d.name,
            "created_at": timestamp(&d.created_at),
            "url": self.state.url(&format!("/images/{}", d.id)),
            "author": author,
            "user": user,
            "namespace": namespace,
        }))
    }
}
