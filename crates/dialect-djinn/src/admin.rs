//! Operator functions for namespaces (the `tintype namespace` commands call
//! these). A namespace is named `path@owner`. Collaborators and visibility
//! belong to the root namespace and govern its whole tree, so they are set
//! on the root of the given path.

use crate::namespace::{self, Namespace, Visibility};
use serde_json::{json, Value};
use tintype_engine::core::{CoreError, RecordFilter, User};
use tintype_engine::Engine;

fn parse_ref(ns_ref: &str) -> Result<(&str, &str), CoreError> {
    match namespace::split_ref(ns_ref.trim()) {
        (path, Some(owner)) if !owner.is_empty() => {
            if namespace::valid_path(path) {
                Ok((path, owner))
            } else {
                Err(CoreError::Invalid(format!(
                    "'{path}' is not a namespace path (letters, digits, '-', '_' in '/'-separated segments, at most {} deep)",
                    namespace::MAX_DEPTH
                )))
            }
        }
        _ => Err(CoreError::Invalid(format!(
            "'{ns_ref}' must name the owner: path@owner"
        ))),
    }
}

async fn user(engine: &Engine, name: &str) -> Result<User, CoreError> {
    match engine.user(name).await {
        Err(CoreError::NotFound) => Err(CoreError::Invalid(format!("no user '{name}'"))),
        other => other,
    }
}

async fn existing(engine: &Engine, ns_ref: &str) -> Result<(Namespace, User), CoreError> {
    let (path, owner) = parse_ref(ns_ref)?;
    let owner = user(engine, owner).await?;
    let ns = namespace::find(engine, owner.id, path)
        .await?
        .ok_or_else(|| CoreError::Invalid(format!("no namespace '{path}@{}'", owner.name)))?;
    Ok((ns, owner))
}

/// The namespace as JSON, with its owner's name and the collaborators of
/// its tree.
pub async fn namespace_json(engine: &Engine, ns: &Namespace) -> Result<Value, CoreError> {
    let root = namespace::root_of(engine, ns).await?;
    let owner = engine.user_by_id(ns.user_id).await?.map(|u| u.name);
    let mut collaborators = Vec::new();
    for id in namespace::collaborators(engine, root.id).await? {
        if let Some(u) = engine.user_by_id(id).await? {
            collaborators.push(u.name);
        }
    }
    collaborators.sort();
    let mut fields = crate::wire::namespace_fields(ns, &root);
    fields.insert("owner".into(), json!(owner));
    fields.insert("collaborators".into(), json!(collaborators));
    Ok(Value::Object(fields))
}

/// Creates `path@owner` (and its missing ancestors). A visibility may only
/// be given for a new root, or one equal to the existing root's.
pub async fn namespace_create(
    engine: &Engine,
    ns_ref: &str,
    visibility: Option<Visibility>,
    description: Option<&str>,
) -> Result<Value, CoreError> {
    let (path, owner) = parse_ref(ns_ref)?;
    let owner = user(engine, owner).await?;
    let root_path = path.split('/').next().unwrap_or(path);
    if let (Some(v), Some(root)) = (
        visibility,
        namespace::find(engine, owner.id, root_path).await?,
    ) {
        if root.visibility != v {
            return Err(CoreError::Invalid(format!(
                "'{root_path}@{}' is {}; visibility is set on the root (set-visibility)",
                owner.name,
                root.visibility.as_str()
            )));
        }
    }
    let mut ns = namespace::ensure(engine, owner.id, path, visibility).await?;
    if let Some(d) = description {
        if d.len() > 1024 {
            return Err(CoreError::Invalid(
                "a description is at most 1024 bytes".into(),
            ));
        }
        ns.description = d.to_string();
        ns = namespace::save(engine, &ns).await?;
    }
    namespace_json(engine, &ns).await
}

/// Lets `user` use and manage the tree of `path@owner`.
pub async fn namespace_add_collaborator(
    engine: &Engine,
    ns_ref: &str,
    user_name: &str,
) -> Result<Value, CoreError> {
    let (ns, owner) = existing(engine, ns_ref).await?;
    let u = user(engine, user_name).await?;
    if u.id == owner.id {
        return Err(CoreError::Invalid(format!(
            "'{}' owns the namespace already",
            u.name
        )));
    }
    let root = namespace::root_of(engine, &ns).await?;
    namespace::add_collaborator(engine, root.id, u.id).await?;
    namespace_json(engine, &ns).await
}

pub async fn namespace_remove_collaborator(
    engine: &Engine,
    ns_ref: &str,
    user_name: &str,
) -> Result<Value, CoreError> {
    let (ns, _) = existing(engine, ns_ref).await?;
    let u = user(engine, user_name).await?;
    let root = namespace::root_of(engine, &ns).await?;
    if !namespace::remove_collaborator(engine, root.id, u.id).await? {
        return Err(CoreError::Invalid(format!(
            "'{}' is not a collaborator of '{}'",
            u.name, root.path
        )));
    }
    namespace_json(engine, &ns).await
}

/// Sets the visibility of the tree `path@owner` belongs to.
pub async fn namespace_set_visibility(
    engine: &Engine,
    ns_ref: &str,
    visibility: Visibility,
) -> Result<Value, CoreError> {
    let (ns, _) = existing(engine, ns_ref).await?;
    let mut root = namespace::root_of(engine, &ns).await?;
    root.visibility = visibility;
    namespace::save(engine, &root).await?;
    namespace_json(engine, &ns).await
}

/// The namespaces of one owner, or of everyone.
pub async fn namespace_list(engine: &Engine, owner: Option<&str>) -> Result<Value, CoreError> {
    let owner_id = match owner {
        Some(o) => Some(user(engine, o).await?.id),
        None => None,
    };
    let filter = RecordFilter {
        scope: namespace::NS_SCOPE.into(),
        owner: owner_id,
        ..RecordFilter::default()
    };
    let mut out = Vec::new();
    for r in namespace::every_record(engine, filter).await? {
        if let Some(ns) = namespace::by_id(engine, r.seq).await? {
            out.push(namespace_json(engine, &ns).await?);
        }
    }
    Ok(Value::Array(out))
}
