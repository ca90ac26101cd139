//! `tintype namespace ...`: operator commands over [`crate::admin`]. The
//! binary embeds [`NamespaceCommand`] as a subcommand and calls [`run`].

use crate::admin;
use crate::namespace::Visibility;
use std::sync::Arc;
use tintype_engine::Engine;

/// Djinn namespaces: `path@owner`, with collaborators and visibility.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum NamespaceCommand {
    /// Creates a namespace (and its missing parents) for its owner.
    Create {
        /// `path@owner`, e.g. `djinn@alice` or `team/ci@alice`.
        namespace: String,
        /// Who may read its images besides owner and collaborators (a new root only).
        #[arg(long, value_enum)]
        visibility: Option<Visibility>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Lets a user upload to, read and delete in the namespace's tree.
    AddCollaborator {
        /// `path@owner`
        namespace: String,
        /// The collaborator's user name.
        user: String,
    },
    /// Removes a collaborator from the namespace's tree.
    RemoveCollaborator {
        /// `path@owner`
        namespace: String,
        user: String,
    },
    /// Sets the visibility of the namespace's tree: private, internal or public.
    SetVisibility {
        /// `path@owner`
        namespace: String,
        #[arg(value_enum)]
        visibility: Visibility,
    },
    /// Lists namespaces (of one owner when given).
    List { owner: Option<String> },
}

/// Runs the command and prints its result as JSON.
pub async fn run(engine: &Arc<Engine>, cmd: NamespaceCommand) -> anyhow::Result<()> {
    let out = match cmd {
        NamespaceCommand::Create {
            namespace,
            visibility,
            description,
        } => admin::namespace_create(engine, &namespace, visibility, description.as_deref()).await,
        NamespaceCommand::AddCollaborator { namespace, user } => {
            admin::namespace_add_collaborator(engine, &namespace, &user).await
        }
        NamespaceCommand::RemoveCollaborator { namespace, user } => {
            admin::namespace_remove_collaborator(engine, &namespace, &user).await
        }
        NamespaceCommand::SetVisibility {
            namespace,
            visibility,
        } => admin::namespace_set_visibility(engine, &namespace, visibility).await,
        NamespaceCommand::List { owner } => admin::namespace_list(engine, owner.as_deref()).await,
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: NamespaceCommand,
    }

    #[test]
    fn commands_parse() {
        let c = Cli::try_parse_from([
            "namespace",
            "create",
            "djinn@alice",
            "--visibility",
            "public",
        ])
        .unwrap();
        assert!(matches!(
            c.cmd,
            NamespaceCommand::Create { ref namespace, visibility: Some(Visibility::Public), description: None }
                if namespace == "djinn@alice"
        ));
        let c =
            Cli::try_parse_from(["namespace", "add-collaborator", "djinn@alice", "bob"]).unwrap();
        assert!(matches!(
            c.cmd,
            NamespaceCommand::AddCollaborator { ref user, .. } if user == "bob"
        ));
        let c = Cli::try_parse_from(["namespace", "set-visibility", "djinn@alice", "internal"])
            .unwrap();
        assert!(matches!(
            c.cmd,
            NamespaceCommand::SetVisibility {
                visibility: Visibility::Internal,
                ..
            }
        ));
        assert!(
            Cli::try_parse_from(["namespace", "set-visibility", "djinn@alice", "secret"]).is_err()
        );
        assert!(Cli::try_parse_from(["namespace", "remove-collaborator", "djinn@alice"]).is_err());
    }
}
