//! Teams. A principal with a team (a token or dashboard user created with `team`) changes
//! only the APIs whose `team` is theirs, with their versions (and so their routes and API
//! policies); every other configuration entity needs a principal without a team. The
//! check runs on the plan of every configuration change, just before it is committed,
//! against the API as stored and as it would be.

use axum::http::StatusCode;
use tollgate_model::{Change, Document, EntityKind, Plan};

use crate::auth::Principal;
use crate::problem::ApiError;

fn forbidden(detail: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
}

/// Refuses the whole plan if `team` (the principal's) does not own every entity it changes.
pub fn check_plan(
    team: Option<&str>,
    plan: &Plan,
    before: &Document,
    after: &Document,
) -> Result<(), ApiError> {
    let Some(team) = team else {
        return Ok(());
    };
    for change in &plan.changes {
        check_change(team, change, before, after)?;
    }
    Ok(())
}

fn check_change(
    team: &str,
    change: &Change,
    before: &Document,
    after: &Document,
) -> Result<(), ApiError> {
    let key = &change.key;
    let api = match key.kind {
        EntityKind::Api => key.name.as_str(),
        EntityKind::Version => key
            .name
            .split_once('@')
            .map_or(key.name.as_str(), |(a, _)| a),
        kind => {
            return Err(forbidden(format!(
                "changing {} `{}` needs a principal without a team; yours is `{team}`",
                kind.as_str(),
                key.name
            )));
        }
    };
    let entity = match key.kind {
        EntityKind::Api => format!("API `{api}`"),
        _ => format!("version `{}` of API `{api}`", key.name),
    };
    let mut found = false;
    for (doc, verb) in [(before, "belongs"), (after, "would belong")] {
        let Some(owner) = doc.apis.iter().find(|a| a.name == api) else {
            continue;
        };
        found = true;
        match owner.team.as_deref() {
            Some(t) if t == team => {}
            Some(other) => {
                return Err(forbidden(format!(
                    "{entity} {verb} to team `{other}`; yours is `{team}`"
                )));
            }
            None => {
                return Err(forbidden(format!(
                    "{entity} {verb} to no team; your team is `{team}`, so set `team: {team}` on the API"
                )));
            }
        }
    }
    if !found {
        return Err(forbidden(format!(
            "{entity} belongs to no team; yours is `{team}`"
        )));
    }
    Ok(())
}

/// A team name's problem, if any.
pub fn team_problem(team: &str) -> Option<&'static str> {
    let ok = !team.is_empty()
        && team.len() <= 100
        && team.trim() == team
        && !team.chars().any(char::is_control);
    (!ok).then_some("a team is 1 to 100 characters without leading or trailing spaces")
}

/// Whether `who` may give a token or user the team `team` (or none): a principal with a
/// team gives only its own.
pub fn may_assign(who: &Principal, team: Option<&str>, what: &str) -> Result<(), ApiError> {
    match (who.team.as_deref(), team) {
        (None, _) => Ok(()),
        (Some(mine), Some(t)) if mine == t => Ok(()),
        (Some(mine), _) => Err(forbidden(format!(
            "you are in team `{mine}`: {what} you create or change must be in team `{mine}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_model::{EntitySet, parse_document};

    const DOC: &str = r#"
format_version: 1
upstreams:
  - name: svc
    targets: [{ url: "http://127.0.0.1:9001" }]
apis:
  - name: orders
    team: payments
    versions:
      - { version: v1, upstream: svc, routes: [{ path: /orders }] }
  - name: users
    team: identity
    versions:
      - { version: v1, upstream: svc, routes: [{ path: /users }] }
  - name: legacy
    versions:
      - { version: v1, upstream: svc, routes: [{ path: /legacy }] }
"#;

    fn doc() -> Document {
        parse_document(DOC).unwrap().0
    }

    fn check(team: Option<&str>, edit: impl FnOnce(&mut Document)) -> Result<(), String> {
        let before = doc();
        let mut after = before.clone();
        edit(&mut after);
        let plan = EntitySet::from_document(&before).plan_to(&EntitySet::from_document(&after));
        assert!(!plan.is_empty(), "the edit changes something");
        check_plan(team, &plan, &before, &after).map_err(|e| {
            assert_eq!(e.status, StatusCode::FORBIDDEN);
            e.detail
        })
    }

    fn api<'a>(doc: &'a mut Document, name: &str) -> &'a mut tollgate_model::Api {
        doc.apis.iter_mut().find(|a| a.name == name).unwrap()
    }

    #[test]
    fn a_team_changes_its_own_apis_and_versions() {
        let team = Some("payments");
        check(team, |d| api(d, "orders").title = Some("Orders".into())).unwrap();
        check(team, |d| {
            api(d, "orders").versions[0].routes[0].path = "/o".into()
        })
        .unwrap();
        check(team, |d| {
            let mut new = api(d, "orders").clone();
            new.name = "refunds".into();
            new.versions[0].routes[0].path = "/refunds".into();
            d.apis.push(new);
        })
        .unwrap();
        check(team, |d| d.apis.retain(|a| a.name != "orders")).unwrap();
    }

    #[test]
    fn a_team_cannot_touch_another_teams_api_or_move_its_own_out() {
        let team = Some("payments");
        let e = check(team, |d| api(d, "users").title = Some("x".into())).unwrap_err();
        assert!(e.contains("API `users` belongs to team `identity`"), "{e}");
        let e = check(team, |d| {
            api(d, "users").versions[0].routes[0].path = "/u".into()
        })
        .unwrap_err();
        assert!(e.contains("version `users@v1` of API `users`"), "{e}");
        let e = check(team, |d| api(d, "orders").team = Some("identity".into())).unwrap_err();
        assert!(e.contains("would belong to team `identity`"), "{e}");
        let e = check(team, |d| api(d, "legacy").title = Some("x".into())).unwrap_err();
        assert!(e.contains("belongs to no team"), "{e}");
        let e = check(team, |d| {
            let mut new = api(d, "orders").clone();
            new.name = "elsewhere".into();
            new.team = Some("identity".into());
            new.versions[0].routes[0].path = "/elsewhere".into();
            d.apis.push(new);
        })
        .unwrap_err();
        assert!(e.contains("would belong to team `identity`"), "{e}");
    }

    #[test]
    fn a_team_cannot_change_what_belongs_to_no_api_and_a_mixed_change_is_refused_whole() {
        let team = Some("payments");
        let e = check(team, |d| d.upstreams[0].targets.clear()).unwrap_err();
        assert!(
            e.contains("upstream `svc` needs a principal without a team"),
            "{e}"
        );
        let e = check(team, |d| {
            api(d, "orders").title = Some("mine".into());
            api(d, "users").title = Some("theirs".into());
        })
        .unwrap_err();
        assert!(e.contains("`identity`"), "{e}");
    }

    #[test]
    fn a_principal_without_a_team_changes_anything() {
        check(None, |d| {
            api(d, "users").title = Some("x".into());
            api(d, "legacy").team = Some("payments".into());
            d.upstreams[0].targets.clear();
        })
        .unwrap();
    }

    #[test]
    fn team_names() {
        assert_eq!(team_problem("payments"), None);
        assert!(team_problem("").is_some());
        assert!(team_problem(" payments").is_some());
        assert!(team_problem(&"x".repeat(101)).is_some());
    }
}
