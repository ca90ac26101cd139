use crate::{random_hex, Engine};
use sha2::{Digest, Sha256};
use tintype_core::{now, CoreError, Principal, Scope, Token, User};

/// A token as created: the secret is shown once and stored only as a hash.
#[derive(Debug, Clone)]
pub struct NewTokenSecret {
    pub token: Token,
    pub secret: String,
}

/// The SHA-256 of a secret in hex (64 digits), in a buffer: on every
/// request, so neither char by char nor on the heap.
struct SecretHash([u8; 64]);

impl SecretHash {
    fn of(secret: &str) -> Self {
        let mut hex = [0u8; 64];
        let _ = hex::encode_to_slice(Sha256::digest(secret.as_bytes()), &mut hex);
        SecretHash(hex)
    }

    fn as_str(&self) -> &str {
        // Hex digits only, so always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

fn hash_secret(secret: &str) -> String {
    SecretHash::of(secret).as_str().to_string()
}

impl Engine {
    pub async fn create_user(&self, name: &str, email: Option<&str>) -> Result<User, CoreError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(CoreError::Invalid(
                "a user name is 1-64 letters, digits, '-', '_' or '.'".into(),
            ));
        }
        match self
            .catalog
            .create_user(name, email, &random_hex(32))
            .await?
        {
            Ok(u) => Ok(u),
            Err(_) => Err(CoreError::Conflict(format!("user '{name}' already exists"))),
        }
    }

    pub async fn user(&self, name_or_id: &str) -> Result<User, CoreError> {
        if let Some(u) = self.catalog.user_by_name(name_or_id).await? {
            return Ok(u);
        }
        if let Ok(id) = name_or_id.parse::<i64>() {
            if let Some(u) = self.catalog.user_by_id(id).await? {
                return Ok(u);
            }
        }
        Err(CoreError::NotFound)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, CoreError> {
        Ok(self.catalog.user_by_id(id).await?)
    }

    pub async fn users(&self) -> Result<Vec<User>, CoreError> {
        Ok(self.catalog.list_users().await?)
    }

    pub async fn set_quota(&self, user: &str, images_per_day: i64) -> Result<User, CoreError> {
        if images_per_day < 0 {
            return Err(CoreError::Invalid(
                "the quota must be 0 (unlimited) or more".into(),
            ));
        }
        let u = self.user(user).await?;
        self.catalog.set_quota(u.id, images_per_day).await?;
        self.caches.forget_user(u.id);
        self.user(&u.name).await
    }

    /// Creates a token with the given scopes (the three image scopes when
    /// empty) and returns its secret, which is not stored.
    pub async fn create_token(
        &self,
        user: &str,
        scopes: &[Scope],
    ) -> Result<NewTokenSecret, CoreError> {
        let u = self.user(user).await?;
        let mut scopes: Vec<Scope> = if scopes.is_empty() {
            Scope::IMAGE.to_vec()
        } else {
            scopes.to_vec()
        };
        scopes.sort();
        scopes.dedup();
        let token = Token {
            id: random_hex(8),
            user_id: u.id,
            scopes,
            created_at: now(),
            revoked: false,
        };
        let secret = format!("tt_{}", random_hex(24));
        self.catalog
            .create_token(&token, &hash_secret(&secret))
            .await?;
        Ok(NewTokenSecret { token, secret })
    }

    pub async fn tokens(&self, user: &str) -> Result<Vec<Token>, CoreError> {
        let u = self.user(user).await?;
        Ok(self.catalog.list_tokens(u.id).await?)
    }

    pub async fn revoke_token(&self, token_id: &str) -> Result<(), CoreError> {
        // Forgotten before and after the catalog write: a lookup running
        // concurrently cannot put the token back (see cache generations).
        self.caches
            .tokens
            .remove_where(|_, p| p.token_id == token_id);
        let revoked = self.catalog.revoke_token(token_id).await;
        self.caches
            .tokens
            .remove_where(|_, p| p.token_id == token_id);
        if revoked? {
            Ok(())
        } else {
            Err(CoreError::NotFound)
        }
    }

    /// The principal behind a secret, or None for an unknown or revoked one.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>, CoreError> {
        if secret.is_empty() || secret.len() > 256 {
            return Ok(None);
        }
        let h = SecretHash::of(secret);
        let h = h.as_str();
        // Cached for at most CACHE_TTL: a revocation on another node is
        // seen within that; on this node revoke_token forgets it at once.
        if let Some(p) = self.caches.tokens.get(h) {
            return Ok(Some(p));
        }
        let generation = self.caches.tokens.generation();
        let Some(token) = self.catalog.token_by_hash(h).await? else {
            return Ok(None);
        };
        // The lookup is by the secret's SHA-256, so the database compares
        // hashes, never the secret: timing can tell an attacker nothing
        // about a secret they do not already hold.
        if token.revoked {
            return Ok(None);
        }
        let Some(user) = self.catalog.user_by_id(token.user_id).await? else {
            return Ok(None);
        };
        let p = Principal {
            user,
            token_id: token.id,
            scopes: token.scopes,
        };
        self.caches
            .tokens
            .insert(generation, h.to_string(), p.clone());
        Ok(Some(p))
    }

    /// On the first start with an empty catalog: creates the user `admin`
    /// and returns an admin token's secret (to be shown once). A start that
    /// was interrupted after creating the user but before its token is
    /// completed on the next start (the admin has no token yet).
    pub async fn bootstrap_admin(&self) -> Result<Option<String>, CoreError> {
        if self.catalog.count_users().await? == 0 {
            match self.create_user("admin", None).await {
                Ok(_) | Err(CoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let Some(admin) = self.catalog.user_by_name("admin").await? else {
            return Ok(None);
        };
        if self.catalog.count_users().await? != 1
            || !self.catalog.list_tokens(admin.id).await?.is_empty()
        {
            return Ok(None);
        }
        let mut scopes = Scope::IMAGE.to_vec();
        scopes.push(Scope::Admin);
        Ok(Some(self.create_token("admin", &scopes).await?.secret))
    }
}
