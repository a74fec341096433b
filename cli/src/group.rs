//! `quickmeet group …`: groups, with people named by username and groups by id or name.

use crate::client::{unexpected, Target};
use crate::output::{fields, json, say, table};
use crate::{Cli, Io, Outcome};
use clap::Subcommand;
use quickmeet::admin::{AdminRequest, AdminResponse, GroupView};

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Create a group with a group admin and members.
    ///
    /// Example: quickmeet group create "Front desk" --admin alice --member bob --member carol
    Create {
        /// The group's name, as people see it
        name: String,
        /// The group's admin (also a member)
        #[arg(long, value_name = "USERNAME")]
        admin: String,
        /// A member to add (repeat for more)
        #[arg(long = "member", value_name = "USERNAME")]
        members: Vec<String>,
        /// What the group is for
        #[arg(long)]
        description: Option<String>,
    },
    /// List every group.
    ///
    /// Example: quickmeet group list
    List,
    /// Show a group and its members.
    ///
    /// Example: quickmeet group show "Front desk"
    Show {
        /// Group id, or its name when no other group has it
        group: String,
    },
    /// Add a member.
    ///
    /// Example: quickmeet group add-member "Front desk" dave
    AddMember {
        /// Group id, or its name when no other group has it
        group: String,
        /// The user to add
        username: String,
    },
    /// Remove a member (when it is the group admin, the longest-standing member takes over).
    ///
    /// Example: quickmeet group remove-member "Front desk" dave
    RemoveMember {
        /// Group id, or its name when no other group has it
        group: String,
        /// The member to remove
        username: String,
    },
    /// Delete a group.
    ///
    /// Example: quickmeet group delete "Front desk"
    Delete {
        /// Group id, or its name when no other group has it
        group: String,
    },
}

fn show(cli: &Cli, io: &mut Io<'_>, g: &GroupView) -> Outcome {
    if cli.json {
        return json(io.out, g);
    }
    fields(
        io.out,
        &[
            ("name", g.name.clone()),
            ("id", g.id.clone()),
            ("description", g.description.clone()),
            ("admin", g.admin.clone()),
            ("members", format!("{} — {}", g.members.len(), g.members.join(", "))),
            ("created", g.created_at.clone()),
        ],
    )
}

pub fn run(cli: &Cli, cmd: &GroupCmd, io: &mut Io<'_>) -> Outcome {
    let target = Target::resolve(cli)?;
    match target.request(cmd.request())? {
        AdminResponse::Groups { groups } => {
            if cli.json {
                return json(io.out, &groups);
            }
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| vec![g.name.clone(), g.members.len().to_string(), g.admin.clone(), g.id.clone()])
                .collect();
            table(io.out, &["NAME", "MEMBERS", "ADMIN", "ID"], &rows)
        }
        AdminResponse::Group(g) => match cmd {
            GroupCmd::Create { .. } if !cli.json => say(io.out, format!("created group {} ({})", g.name, g.id)),
            _ => show(cli, io, &g),
        },
        AdminResponse::Done { message } if cli.json => json(io.out, &serde_json::json!({ "message": message })),
        AdminResponse::Done { message } => say(io.out, message),
        other => Err(unexpected(other)),
    }
}

impl GroupCmd {
    /// The admin request for this command.
    fn request(&self) -> AdminRequest {
        match self {
            GroupCmd::Create { name, admin, members, description } => AdminRequest::GroupCreate {
                name: name.clone(),
                admin: admin.clone(),
                description: description.clone(),
                members: members.clone(),
            },
            GroupCmd::List => AdminRequest::GroupList,
            GroupCmd::Show { group } => AdminRequest::GroupShow { group: group.clone() },
            GroupCmd::AddMember { group, username } => {
                AdminRequest::GroupAddMember { group: group.clone(), username: username.clone() }
            }
            GroupCmd::RemoveMember { group, username } => {
                AdminRequest::GroupRemoveMember { group: group.clone(), username: username.clone() }
            }
            GroupCmd::Delete { group } => AdminRequest::GroupDelete { group: group.clone() },
        }
    }
}
