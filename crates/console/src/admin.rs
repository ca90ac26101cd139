//! The admin pages (a token with the `admin` scope): users, their tokens
//! and quotas, and the job queue.

use crate::page::{self, clip, json_text, time_el, ConsoleError};
use crate::session::{Page, Posted, Session};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use tintype_engine::core::{CoreError, JobState, Scope, User};
use tintype_http::extract::Params;
use tintype_http::AppState;

/// Jobs on one page of the queue.
const JOBS_PAGE: i64 = 50;
/// Largest images-per-day quota the form takes.
const MAX_QUOTA: i64 = 1_000_000_000;
/// Longest e-mail address the form takes.
const MAX_EMAIL_BYTES: usize = 254;

const SCOPES: [Scope; 4] = [
    Scope::ImageRead,
    Scope::ImageWrite,
    Scope::ImageDelete,
    Scope::Admin,
];

fn admin(s: &Session) -> Result<(), ConsoleError> {
    if s.is_admin() {
        Ok(())
    } else {
        Err(ConsoleError::forbidden())
    }
}

fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn user_href(name: &str) -> String {
    format!("/console/admin/users/{}", seg(name))
}

/// A user by name, a missing one worded for the page.
async fn find_user(st: &AppState, name: &str) -> Result<User, ConsoleError> {
    st.engine.user(name).await.map_err(|e| match e {
        CoreError::NotFound => ConsoleError::new(StatusCode::NOT_FOUND, "No such user."),
        other => other.into(),
    })
}

/// `GET /console/admin`: the users, and a form to add one.
pub async fn users(State(st): State<AppState>, Page(s): Page) -> Result<Response, ConsoleError> {
    admin(&s)?;
    let users = st.engine.users().await?;
    let counts = st.engine.job_counts().await?;
    let body = html! {
        p {
            "Job queue: " (counts.queued) " queued, " (counts.running) " running, "
            (counts.failed) " failed. " a href="/console/admin/jobs" { "See the jobs" }
        }
        section aria-labelledby="users-h" {
            h2 #users-h { "Users" }
            div.scroll {
                table #users {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "E-mail" }
                        th scope="col" { "Images per day" } th scope="col" { "Created" }
                    } }
                    tbody {
                        @for u in &users {
                            tr {
                                th scope="row" { a href=(user_href(&u.name)) { (u.name) } }
                                td { (u.email.as_deref().unwrap_or("")) }
                                td { @if u.images_per_day == 0 { "unlimited" } @else { (u.images_per_day) } }
                                td { (time_el(u.created_at)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="new-user-h" {
            h2 #new-user-h { "Add a user" }
            form.card method="post" action="/console/admin/users" {
                input type="hidden" name="csrf" value=(s.csrf);
                label for="new-name" { "Name" }
                input #new-name name="name" required maxlength="64" pattern="[A-Za-z0-9._\\-]+"
                    autocomplete="off";
                p.hint { "Letters, digits, '-', '_' or '.'." }
                label for="new-email" { "E-mail (optional)" }
                input #new-email name="email" type="email" maxlength="254" autocomplete="off";
                button type="submit" { "Add the user" }
            }
        }
    };
    Ok(page::render(StatusCode::OK, "Users", Some(&s), body))
}

/// `POST /console/admin/users`
pub async fn create_user(
    State(st): State<AppState>,
    Posted(s, form): Posted,
) -> Result<Response, ConsoleError> {
    admin(&s)?;
    let name = form.get("name").unwrap_or("").trim();
    let email = form.get("email").map(str::trim).filter(|e| !e.is_empty());
    if email.is_some_and(|e| e.len() > MAX_EMAIL_BYTES) {
        return Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            format!("An e-mail address is at most {MAX_EMAIL_BYTES} bytes."),
        ));
    }
    let u = st.engine.create_user(name, email).await?;
    Ok(Redirect::to(&user_href(&u.name)).into_response())
}

fn user_page(
    s: &Session,
    u: &User,
    tokens: &[tintype_engine::core::Token],
    new_secret: Option<&str>,
) -> Markup {
    let href = user_href(&u.name);
    html! {
        @if let Some(secret) = new_secret {
            section.card.secret aria-labelledby="secret-h" role="status" {
                h2 #secret-h { "The new token" }
                p { "Copy it now: it is shown once and never stored." }
                p { code #new-secret { (secret) } }
            }
        }
        dl.facts {
            dt { "E-mail" } dd { (u.email.as_deref().unwrap_or("none")) }
            dt { "Created" } dd { (time_el(u.created_at)) }
            dt { "Id" } dd { (u.id) }
        }
        section aria-labelledby="quota-h" {
            h2 #quota-h { "Quota" }
            form.card.inline method="post" action={ (href) "/quota" } {
                input type="hidden" name="csrf" value=(s.csrf);
                label for="quota" { "Images per 24 hours (0: unlimited)" }
                input #quota name="images_per_day" type="number" min="0" max=(MAX_QUOTA) required
                    value=(u.images_per_day);
                button type="submit" { "Set the quota" }
            }
        }
        section aria-labelledby="tokens-h" {
            h2 #tokens-h { "Tokens" }
            @if tokens.is_empty() {
                p { "None." }
            } @else {
                div.scroll {
                    table #tokens {
                        thead { tr {
                            th scope="col" { "Id" } th scope="col" { "Scopes" }
                            th scope="col" { "Created" } th scope="col" { "State" }
                        } }
                        tbody {
                            @for t in tokens {
                                tr {
                                    th scope="row" { code { (t.id) } }
                                    td { (t.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")) }
                                    td { (time_el(t.created_at)) }
                                    td {
                                        @if t.revoked {
                                            "revoked"
                                        } @else {
                                            form method="post" action={ (href) "/tokens/" (seg(&t.id)) "/revoke" } {
                                                input type="hidden" name="csrf" value=(s.csrf);
                                                button.danger type="submit" aria-label={ "Revoke token " (t.id) } { "Revoke" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.card method="post" action={ (href) "/tokens" } {
                input type="hidden" name="csrf" value=(s.csrf);
                fieldset {
                    legend { "A new token's scopes" }
                    @for sc in SCOPES {
                        label.check {
                            @if sc == Scope::Admin {
                                input type="checkbox" name="scope" value=(sc.as_str());
                            } @else {
                                input type="checkbox" name="scope" value=(sc.as_str()) checked;
                            }
                            " " (sc.as_str())
                        }
                    }
                }
                button type="submit" { "Create a token" }
            }
        }
    }
}

/// `GET /console/admin/users/{name}`: a user's quota and tokens.
pub async fn user(
    State(st): State<AppState>,
    Page(s): Page,
    Path(name): Path<String>,
) -> Result<Response, ConsoleError> {
    admin(&s)?;
    let u = find_user(&st, &name).await?;
    let tokens = st.engine.tokens(&u.name).await?;
    let title = format!("User {}", u.name);
    Ok(page::render(
        StatusCode::OK,
        &title,
        Some(&s),
        user_page(&s, &u, &tokens, None),
    ))
}

/// `POST /console/admin/users/{name}/tokens`: the page again, with the
/// new secret shown once.
pub async fn create_token(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Posted(s, form): Posted,
) -> Result<Response, ConsoleError> {
    admin(&s)?;
    let u = find_user(&st, &name).await?;
    let mut scopes = Vec::new();
    for v in form.all("scope").take(SCOPES.len() * 2) {
        let sc: Scope = v
            .parse()
            .map_err(|m: String| ConsoleError::new(StatusCode::BAD_REQUEST, m))?;
        scopes.push(sc);
    }
    if scopes.is_empty() {
        return Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            "Choose at least one scope.",
        ));
    }
    let created = st.engine.create_token(&u.name, &scopes).await?;
    let tokens = st.engine.tokens(&u.name).await?;
    let title = format!("User {}", u.name);
    Ok(page::render(
        StatusCode::CREATED,
        &title,
        Some(&s),
        user_page(&s, &u, &tokens, Some(&created.secret)),
    ))
}

/// `POST /console/admin/users/{name}/tokens/{id}/revoke`
pub async fn revoke_token(
    State(st): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    Posted(s, _): Posted,
) -> Result<Response, ConsoleError> {
    admin(&s)?;
    let u = find_user(&st, &name).await?;
    let tokens = st.engine.tokens(&u.name).await?;
    if !tokens.iter().any(|t| t.id == id) {
        return Err(ConsoleError::new(
            StatusCode::NOT_FOUND,
            "This user has no such token.",
        ));
    }
    st.engine.revoke_token(&id).await?;
    Ok(Redirect::to(&user_href(&u.name)).into_response())
}

/// `POST /console/admin/users/{name}/quota`
pub async fn set_quota(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Posted(s, form): Posted,
) -> Result<Response, ConsoleError> {
    admin(&s)?;
    let n: i64 = form
        .get("images_per_day")
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| (0..=MAX_QUOTA).contains(n))
        .ok_or_else(|| {
            ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!("The quota is a whole number from 0 to {MAX_QUOTA}."),
            )
        })?;
    let u = find_user(&st, &name).await?;
    st.engine.set_quota(&u.name, n).await?;
    Ok(Redirect::to(&user_href(&u.name)).into_response())
}

fn jobs_href(state: Option<JobState>, before: Option<i64>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    s.append_pair("state", state.map_or("all", |s| s.as_str()));
    if let Some(b) = before {
        s.append_pair("before", &b.to_string());
    }
    format!("/console/admin/jobs?{}", s.finish())
}

/// `GET /console/admin/jobs?state=queued|running|failed|done|all&before=ID`:
/// the queue (every state unless one is named), newest first, with the errors of failed jobs and a retry
/// button for each.
pub async fn jobs(
    State(st): State<AppState>,
    Page(s): Page,
    params: Params,
) -> Result<Response, ConsoleError> {
    admin(&s)?;
    let state = params.get("state").and_then(JobState::parse);
    let before = params
        .get("before")
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|b| *b > 0);
    let counts = st.engine.job_counts().await?;
    let jobs = st.engine.jobs_by_state(state, before, JOBS_PAGE).await?;
    let tabs = [
        (Some(JobState::Queued), "Queued", counts.queued),
        (Some(JobState::Running), "Running", counts.running),
        (Some(JobState::Failed), "Failed", counts.failed),
        (Some(JobState::Done), "Done", counts.done),
        (
            None,
            "All",
            counts.queued + counts.running + counts.failed + counts.done,
        ),
    ];
    let body = html! {
        nav.toggle aria-label="Job state" {
            @for (t, label, n) in tabs {
                @if t == state {
                    a href=(jobs_href(t, None)) aria-current="page" { (label) " (" (n) ")" }
                } @else {
                    a href=(jobs_href(t, None)) { (label) " (" (n) ")" }
                }
            }
        }
        @if jobs.is_empty() {
            p #no-jobs { "No jobs here." }
        } @else {
            div.scroll {
                table #jobs {
                    thead { tr {
                        th scope="col" { "Id" } th scope="col" { "Kind" } th scope="col" { "State" }
                        th scope="col" { "Attempts" } th scope="col" { "Due / lease" }
                        th scope="col" { "Payload" } th scope="col" { "Last error" } th scope="col" { "Action" }
                    } }
                    tbody {
                        @for j in &jobs {
                            tr {
                                th scope="row" { (j.id) }
                                td { (j.kind) }
                                td { (j.state.as_str()) }
                                td { (j.attempts) " / " (j.max_attempts) }
                                td {
                                    (time_el(j.run_at))
                                    @if let (Some(l), Some(w)) = (j.lease_until, &j.locked_by) {
                                        br; "held by " (clip(w, 60)) " until " (time_el(l))
                                    }
                                }
                                td { code { (json_text(&j.payload, 200)) } }
                                td.error-text { (j.last_error.as_deref().map(|e| clip(e, 500)).unwrap_or_default()) }
                                td {
                                    @if j.state == JobState::Failed {
                                        form method="post" action={ "/console/admin/jobs/" (j.id) "/retry" } {
                                            input type="hidden" name="csrf" value=(s.csrf);
                                            button type="submit" aria-label={ "Retry job " (j.id) } { "Retry" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if jobs.len() as i64 == JOBS_PAGE {
                nav.pager aria-label="Pages" {
                    @if let Some(last) = jobs.last() {
                        a rel="next" href=(jobs_href(state, Some(last.id))) { "Older jobs" }
                    }
                }
            }
        }
    };
    Ok(page::render(StatusCode::OK, "Jobs", Some(&s), body))
}

/// `POST /console/admin/jobs/{id}/retry`: a failed job back to the queue.
pub async fn retry_job(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Posted(s, _): Posted,
) -> Result<Response, ConsoleError> {
    admin(&s)?;
    if !st.engine.retry_job(id).await? {
        return Err(ConsoleError::new(
            StatusCode::CONFLICT,
            "That job is not failed (it may have been retried already).",
        ));
    }
    Ok(Redirect::to(&jobs_href(Some(JobState::Failed), None)).into_response())
}
