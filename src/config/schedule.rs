//! Store schedules: ordinary 5-field crontab expressions in local time.
//!
//! `croner` is used with seconds and years disallowed, so an expression means
//! exactly what it means to cron: day-of-month and day-of-week OR-ed when both
//! are restricted, weekday 0 and 7 are Sunday, `@daily`-style shortcuts, and
//! local-time DST handling like cron's.

use std::str::FromStr;

use chrono::{DateTime, Local, SubsecRound, TimeZone};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed store schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    /// Whether the day fields are AND-ed (see [`days_anded`]).
    days_anded: bool,
}

/// Whether the day-of-month and day-of-week fields are AND-ed, as in Vixie
/// cron: they are OR-ed only when both are restricted, and a field that
/// starts with `*` (so `*/2` too) counts as unrestricted. croner ORs unless
/// told otherwise, and counts `*/2` as restricted.
fn days_anded(expr: &str) -> bool {
    let parts: Vec<&str> = expr.split_whitespace().collect();
    match parts.as_slice() {
        [_, _, dom, _, dow] => day_field_unrestricted(dom) || day_field_unrestricted(dow),
        _ => true, // @shortcuts restrict at most one day field
    }
}

/// A day field cron treats as `*`: one that starts with `*` (or is `?`).
fn day_field_unrestricted(field: &str) -> bool {
    field.starts_with('*') || field == "?"
}

/// A step (`*/70`) larger than its field's range parses, but fires only at
/// the field's first value: refuse it rather than describe it wrongly.
fn check_steps(expr: &str, trimmed: &str) -> Result<(), String> {
    const FIELDS: [(&str, u32); 5] = [
        ("minute", 59),
        ("hour", 23),
        ("day-of-month", 31),
        ("month", 12),
        ("day-of-week", 7),
    ];
    for (field, (name, max)) in trimmed.split_whitespace().zip(FIELDS) {
        for part in field.split(',') {
            if let Some((_, step)) = part.split_once('/')
                && let Ok(n) = step.parse::<u32>()
                && (n == 0 || n > max)
            {
                return Err(format!(
                    "{expr:?}: step /{n} in the {name} field is outside 1-{max}"
                ));
            }
        }
    }
    Ok(())
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Self, String> {
        let trimmed = expr.trim();
        if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
            return Err(format!(
                "{expr:?} is not a 5-field crontab expression (minute hour day-of-month month day-of-week, e.g. \"*/30 * * * *\")"
            ));
        }
        if !trimmed.starts_with('@') {
            check_steps(expr, trimmed)?;
        }
        let days_anded = days_anded(trimmed);
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .dom_and_dow(days_anded)
            .build()
            .parse(trimmed)
            .map_err(|e| format!("{expr:?} is not a valid crontab expression: {e}"))?;
        let schedule = Schedule {
            expr: trimmed.to_string(),
            cron,
            days_anded,
        };
        // `0 0 30 2 *` parses but never fires: a store with it would never
        // be run by the daemon nor judged overdue by `status`.
        if schedule.next_after(&chrono::Utc::now()).is_none() {
            return Err(format!(
                "{expr:?} never fires (no date matches its day and month fields)"
            ));
        }
        Ok(schedule)
    }

    /// The parsed expression, for conversions to other calendar syntaxes
    /// (`schedule::install::calendar`), which read its fields.
    pub(crate) fn cron(&self) -> &Cron {
        &self.cron
    }

    /// Whether a day matching either the day-of-month or the day-of-week
    /// field fires (both restricted), rather than only one matching both.
    pub fn days_ored(&self) -> bool {
        !self.days_anded
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The first fire time strictly after `t`.
    ///
    /// croner can answer `t` itself when `t` is the shifted fire time of a
    /// wall-clock time skipped by a DST change (e.g. 02:00 in a spring-forward
    /// night maps to 03:00, and asking again from 03:00 yields 03:00); that
    /// would fire twice, so such an answer is stepped over.
    ///
    /// Fire times are whole seconds: croner carries the sub-second part of
    /// its argument into its answer, which would make a run that finished at
    /// 05:00:00.4 look earlier than "the 05:00 run" asked for at .6.
    pub fn next_after<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let mut from = t.clone();
        for _ in 0..4 {
            let next = self.cron.find_next_occurrence(&from, false).ok()?;
            let next = next.trunc_subsecs(0);
            if next > *t {
                return Some(next);
            }
            from = next + chrono::Duration::seconds(1);
        }
        None
    }

    /// The last fire time at or before `t`.
    pub fn prev_at_or_before<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let t = t.clone().trunc_subsecs(0);
        self.cron
            .find_previous_occurrence(&t, true)
            .ok()
            .map(|p| p.trunc_subsecs(0))
    }

    /// A human description, e.g. "Every 30 minutes".
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    /// The next fire time after now, in local time.
    pub fn next_local(&self) -> Option<DateTime<Local>> {
        self.next_after(&Local::now())
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Schedule::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Utc};

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.from_utc_datetime(
            &NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_opt(h, min, 0)
                .unwrap(),
        )
    }

    #[test]
    fn day_of_month_or_day_of_week_like_cron() {
        // 2026-11-23 is a Monday. "0 0 1 * mon": the 1st OR any Monday.
        let s = Schedule::parse("0 0 1 * mon").unwrap();
        let next = s.next_after(&at(2026, 11, 23, 12, 0)).unwrap();
        assert_eq!(next, at(2026, 11, 30, 0, 0));
        let next = s.next_after(&next).unwrap();
        assert_eq!(next, at(2026, 12, 1, 0, 0));
    }

    #[test]
    fn previous_fire_time_includes_the_instant() {
        let s = Schedule::parse("*/30 * * * *").unwrap();
        assert_eq!(
            s.prev_at_or_before(&at(2026, 11, 23, 12, 30)).unwrap(),
            at(2026, 11, 23, 12, 30)
        );
        assert_eq!(
            s.prev_at_or_before(&at(2026, 11, 23, 12, 29)).unwrap(),
            at(2026, 11, 23, 12, 0)
        );
    }

    #[test]
    fn a_stepped_star_day_field_ands_like_vixie_cron() {
        // "*/2" starts with '*': cron ANDs, so odd days that are Mondays.
        // 2026-11-23 is a Monday (day 23, odd); next: 2026-12-07 (Monday, 7).
        let s = Schedule::parse("0 0 */2 * mon").unwrap();
        let next = s.next_after(&at(2026, 11, 22, 12, 0)).unwrap();
        assert_eq!(next, at(2026, 11, 23, 0, 0));
        assert_eq!(s.next_after(&next).unwrap(), at(2026, 12, 7, 0, 0));
        // Both restricted (no leading '*'): OR.
        let s = Schedule::parse("0 0 1-31/2 * mon").unwrap();
        assert_eq!(
            s.next_after(&at(2026, 11, 23, 12, 0)).unwrap(),
            at(2026, 11, 25, 0, 0)
        );
    }

    #[test]
    fn fire_times_are_whole_seconds_whatever_the_instant_asked_at() {
        let s = Schedule::parse("*/30 * * * *").unwrap();
        let asked = at(2026, 11, 23, 12, 13) + chrono::Duration::milliseconds(2643);
        assert_eq!(
            s.prev_at_or_before(&asked).unwrap(),
            at(2026, 11, 23, 12, 0)
        );
        assert_eq!(s.next_after(&asked).unwrap(), at(2026, 11, 23, 12, 30));
        // A run that finished half a second after the fire time counts as
        // at or after it, whenever status asks.
        let finished = at(2026, 11, 23, 12, 0) + chrono::Duration::milliseconds(60);
        for ms in [0, 296, 643, 999] {
            let now = at(2026, 11, 23, 12, 13) + chrono::Duration::milliseconds(ms);
            assert!(finished >= s.prev_at_or_before(&now).unwrap(), "{ms}");
        }
    }

    #[test]
    fn schedules_that_never_fire_or_step_past_their_field_are_refused() {
        for expr in ["0 0 30 2 *", "0 0 31 4 *"] {
            let e = Schedule::parse(expr).unwrap_err();
            assert!(e.contains("never fires"), "{expr}: {e}");
        }
        let e = Schedule::parse("*/70 * * * *").unwrap_err();
        assert!(e.contains("minute field"), "{e}");
        assert!(Schedule::parse("*/0 * * * *").is_err());
        assert!(Schedule::parse("0 0 29 2 *").is_ok());
        assert!(Schedule::parse("*/59 */23 */31 */12 */7").is_ok());
    }

    #[test]
    fn rejects_seconds_fields_and_garbage() {
        assert!(Schedule::parse("0 */5 * * * *").is_err());
        assert!(Schedule::parse("every day").is_err());
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("@daily").is_ok());
    }
}
