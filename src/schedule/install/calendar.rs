//! Converting a store's 5-field crontab expression into the OS schedulers'
//! own calendar syntax: systemd's `OnCalendar=` and launchd's
//! `StartCalendarInterval`.
//!
//! Invariants:
//! - The conversion is exact or refused: the union of the rendered entries
//!   fires at exactly the minutes [`crate::schedule::Schedule`] fires at.
//!   What cannot be expressed exactly (`L`, `W`, `#`, an oversized launchd
//!   product) is an error that suggests daemon mode; nothing is approximated.
//! - Day-of-month and day-of-week follow the meaning the schedule module
//!   gives them (Vixie cron's): when both are restricted (neither starts
//!   with `*`, nor is `?`), a day matching either fires; otherwise both must. Both renderers express that as
//!   a union of two entries (one restricting the day of month, one the
//!   weekday), which is exact because a timer fires on the union of its
//!   `OnCalendar=` lines and launchd on the union of its dicts.

use std::collections::BTreeSet;

use crate::schedule::Schedule;

/// The fields of a parsed store schedule, as sets of values, read from
/// the one cron parser ([`Schedule`], croner) so the conversions cannot
/// disagree with the daemon about what an expression means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronFields {
    pub minute: BTreeSet<u32>,
    pub hour: BTreeSet<u32>,
    pub dom: BTreeSet<u32>,
    pub month: BTreeSet<u32>,
    /// 0 = Sunday .. 6 = Saturday (croner folds 7 into 0).
    pub dow: BTreeSet<u32>,
    /// Whether the day fields are OR-ed (both restricted), as
    /// [`Schedule::days_ored`] says.
    pub days_ored: bool,
}

/// croner's bit for a plain value in a field (its `component::ALL_BIT`; the
/// module is private). The other bits of a position mark `L`, `W` and `#`.
const PLAIN: u8 = 1;
/// croner's `L` bit (`LAST_BIT`): on a position (`5L`) or, for a bare `L`,
/// enabled for the whole day-of-month field.
const LAST: u8 = 1 << 6;
/// croner's special bits: `#1`..`#5` (1 << 1 ..= 1 << 5), `L`, `W` (1 << 7).
/// The unit tests below fail if croner renumbers them.
const SPECIAL_BITS: [u8; 7] = [1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5, LAST, 1 << 7];

const SYSTEMD_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

fn refuse(expr: &str, why: &str) -> String {
    format!(
        "schedule {expr:?} cannot be expressed exactly as an OS timer ({why}); use `--mode daemon`, which runs the expression itself"
    )
}

impl CronFields {
    /// The fields of `schedule`; refused when it uses `L`, `W` or `#`,
    /// which calendar syntaxes cannot express.
    pub fn of(schedule: &Schedule) -> Result<CronFields, String> {
        let p = &schedule.cron().pattern;
        let special = p.days.is_feature_enabled(LAST)
            || p.days_of_week.is_feature_enabled(LAST)
            || [&p.days, &p.days_of_week].iter().any(|c| {
                SPECIAL_BITS
                    .iter()
                    .any(|&b| !c.get_set_values(b).is_empty())
            });
        if special {
            return Err(refuse(schedule.expr(), "it uses L, W or #"));
        }
        let [minute, hour, dom, month, dow] =
            [&p.minutes, &p.hours, &p.days, &p.months, &p.days_of_week].map(|c| {
                c.get_set_values(PLAIN)
                    .into_iter()
                    .map(u32::from)
                    .collect::<BTreeSet<u32>>()
            });
        Ok(CronFields {
            minute,
            hour,
            dom,
            month,
            dow: dow.into_iter().map(|d| d % 7).collect(),
            days_ored: schedule.days_ored(),
        })
    }

    /// Parse `expr` with the store schedule parser and take its fields.
    pub fn from_expr(expr: &str) -> Result<CronFields, String> {
        CronFields::of(&Schedule::parse(expr)?)
    }

    /// Whether the day fields are OR-ed (both restricted).
    pub fn days_ored(&self) -> bool {
        self.days_ored
    }

    /// Whether the schedule fires at this local wall-clock time.
    pub fn matches(&self, t: &chrono::NaiveDateTime) -> bool {
        use chrono::{Datelike, Timelike};
        let dom = self.dom.contains(&t.day());
        let dow = self.dow.contains(&t.weekday().num_days_from_sunday());
        let day = if self.days_ored() {
            dom || dow
        } else {
            dom && dow
        };
        day && self.minute.contains(&t.minute())
            && self.hour.contains(&t.hour())
            && self.month.contains(&t.month())
    }

    /// The first fire time within `days` days after `from` that falls on a
    /// local wall-clock time a DST change skips or repeats. OS timers run
    /// such times by their own rules (systemd: a skipped time not at all, a
    /// repeated one once, the first time), which differ from cron's and the
    /// daemon's; `schedule install` says so rather than differ silently.
    pub fn dst_conflict<Tz: chrono::TimeZone>(
        &self,
        tz: &Tz,
        from: chrono::NaiveDate,
        days: u32,
    ) -> Option<chrono::NaiveDateTime> {
        use chrono::{LocalResult, Offset};
        let offset = |t: chrono::NaiveDateTime| match tz.from_local_datetime(&t) {
            LocalResult::Single(x) => Some(x.offset().fix()),
            _ => None,
        };
        for d in 0..days {
            let day = from + chrono::Days::new(u64::from(d));
            let start = day.and_hms_opt(0, 0, 0)?;
            let next = (day + chrono::Days::new(1)).and_hms_opt(0, 0, 0)?;
            if offset(start).is_some() && offset(start) == offset(next) {
                continue;
            }
            for m in 0..(24 * 60) {
                let t = start + chrono::Duration::minutes(m);
                if !matches!(tz.from_local_datetime(&t), LocalResult::Single(_)) && self.matches(&t)
                {
                    return Some(t);
                }
            }
        }
        None
    }

    /// The systemd `OnCalendar=` values whose union is this schedule.
    pub fn to_systemd(&self) -> Vec<String> {
        let time = format!(
            "{}:{}:00",
            systemd_list(&self.hour, 0, 23),
            systemd_list(&self.minute, 0, 59)
        );
        let month = systemd_list(&self.month, 1, 12);
        let dom = systemd_list(&self.dom, 1, 31);
        let dow = systemd_weekdays(&self.dow);
        let with = |dow: Option<&str>, dom: &str| match dow {
            Some(d) => format!("{d} *-{month}-{dom} {time}"),
            None => format!("*-{month}-{dom} {time}"),
        };
        if self.days_ored() {
            vec![with(None, &dom), with(Some(&dow), "*")]
        } else {
            // AND: systemd requires the weekday and the date both, exactly
            // as cron does when a day field starts with `*`.
            let every_weekday = self.dow.len() == 7;
            vec![with((!every_weekday).then_some(dow.as_str()), &dom)]
        }
    }

    /// The launchd `StartCalendarInterval` dicts whose union is this
    /// schedule, as (key, value) lists; refused past `limit` entries.
    pub fn to_launchd(
        &self,
        expr: &str,
        limit: usize,
    ) -> Result<Vec<Vec<(&'static str, u32)>>, String> {
        // A field covering its whole range is left out (a wildcard).
        let opt = |set: &BTreeSet<u32>, lo: u32, hi: u32| -> Option<Vec<u32>> {
            (set.len() as u32 != hi - lo + 1).then(|| set.iter().copied().collect())
        };
        let minute = opt(&self.minute, 0, 59);
        let hour = opt(&self.hour, 0, 23);
        let month = opt(&self.month, 1, 12);
        let dom = opt(&self.dom, 1, 31);
        let dow = opt(&self.dow, 0, 6);
        // (day-of-month values, weekday values); None = unrestricted.
        type Days = (Option<Vec<u32>>, Option<Vec<u32>>);
        let mut variants: Vec<Days> = Vec::new();
        if self.days_ored() {
            // Either restricting field may still cover its whole range
            // (e.g. `1-31`), which makes the union every day.
            if dom.is_none() || dow.is_none() {
                variants.push((None, None));
            } else {
                variants.push((dom.clone(), None));
                variants.push((None, dow.clone()));
            }
        } else {
            // AND. launchd ORs Day with Weekday in one dict (like crontab),
            // so requiring both cannot be expressed.
            if dom.is_some() && dow.is_some() {
                return Err(refuse(
                    expr,
                    "launchd cannot require both a day of month and a weekday",
                ));
            }
            variants.push((dom.clone(), dow.clone()));
        }
        let mut out = Vec::new();
        for (d, w) in variants {
            let axes: Vec<(&'static str, Option<Vec<u32>>)> = vec![
                ("Month", month.clone()),
                ("Day", d),
                ("Weekday", w),
                ("Hour", hour.clone()),
                ("Minute", minute.clone()),
            ];
            let mut entries: Vec<Vec<(&'static str, u32)>> = vec![Vec::new()];
            for (key, vals) in axes {
                let Some(vals) = vals else { continue };
                if entries.len().saturating_mul(vals.len()) + out.len() > limit {
                    return Err(refuse(
                        expr,
                        &format!(
                            "launchd would need more than {limit} StartCalendarInterval entries"
                        ),
                    ));
                }
                entries = entries
                    .into_iter()
                    .flat_map(|e| {
                        vals.iter().map(move |v| {
                            let mut e = e.clone();
                            e.push((key, *v));
                            e
                        })
                    })
                    .collect();
            }
            out.extend(entries);
        }
        Ok(out)
    }
}

/// Render a set of values in systemd's calendar syntax: `*` for the whole
/// range, else a list of values and `a..b` ranges.
///
/// systemd's own repetition (`00/15`) is not used: systemd 252 skips the
/// first repetition after a day boundary (`*:00/7` never fires at 00:00),
/// which the calendar tests caught; explicit lists have no such edge.
fn systemd_list(set: &BTreeSet<u32>, lo: u32, hi: u32) -> String {
    let v: Vec<u32> = set.iter().copied().collect();
    if v.len() as u32 == hi - lo + 1 {
        return "*".into();
    }
    ranges(&v)
        .into_iter()
        .map(|(a, b)| match b - a {
            0 => format!("{a:02}"),
            1 => format!("{a:02},{b:02}"),
            _ => format!("{a:02}..{b:02}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn systemd_weekdays(set: &BTreeSet<u32>) -> String {
    let v: Vec<u32> = set.iter().copied().collect();
    ranges(&v)
        .into_iter()
        .map(|(a, b)| {
            let (a, b) = (SYSTEMD_DAYS[a as usize], SYSTEMD_DAYS[b as usize]);
            if a == b {
                a.to_string()
            } else {
                format!("{a}..{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Consecutive runs of sorted values.
fn ranges(v: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &x in v {
        match out.last_mut() {
            Some((_, b)) if *b + 1 == x => *b = x,
            _ => out.push((x, x)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd(e: &str) -> Vec<String> {
        CronFields::from_expr(e).unwrap().to_systemd()
    }

    #[test]
    fn systemd_forms() {
        assert_eq!(sd("*/15 * * * *"), ["*-*-* *:00,15,30,45:00"]);
        assert_eq!(sd("30 2 * * mon-fri"), ["Mon..Fri *-*-* 02:30:00"]);
        assert_eq!(sd("@daily"), ["*-*-* 00:00:00"]);
        assert_eq!(sd("0 0 1 * mon"), ["*-*-01 00:00:00", "Mon *-*-* 00:00:00"]);
        assert_eq!(sd("0 9-17 * * 0,6"), ["Sun,Sat *-*-* 09..17:00:00"]);
        assert_eq!(sd("0 0 * * 7"), ["Sun *-*-* 00:00:00"]);
        assert_eq!(sd("5,6 1 * jan,jul *"), ["*-01,07-* 01:05,06:00"]);
    }

    #[test]
    fn refuses_what_it_cannot_express() {
        assert!(
            CronFields::from_expr("0 0 L * *")
                .unwrap_err()
                .contains("daemon")
        );
        assert!(
            CronFields::from_expr("0 0 * * 5#2")
                .unwrap_err()
                .contains("daemon")
        );
        for e in ["0 0 15W * *", "0 0 * * 5L", "0 0 L * *"] {
            assert!(
                CronFields::from_expr(e).unwrap_err().contains("daemon"),
                "{e}"
            );
        }
        let f = CronFields::from_expr("* * * * *").unwrap();
        assert_eq!(f.to_launchd("* * * * *", 500).unwrap(), vec![Vec::new()]);
        let f = CronFields::from_expr("*/2 */2 * * *").unwrap();
        assert!(
            f.to_launchd("*/2 */2 * * *", 300)
                .unwrap_err()
                .contains("daemon")
        );
        // cron ANDs "*/2" with "mon"; launchd would OR them.
        let f = CronFields::from_expr("0 0 */2 * mon").unwrap();
        assert!(
            f.to_launchd("0 0 */2 * mon", 500)
                .unwrap_err()
                .contains("daemon")
        );
        assert_eq!(
            f.to_systemd(),
            vec!["Mon *-*-01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31 00:00:00".to_string()],
        );
    }

    #[test]
    fn launchd_union_for_ored_days() {
        let f = CronFields::from_expr("0 6 1,15 * mon").unwrap();
        let e = f.to_launchd("", 500).unwrap();
        assert_eq!(
            e,
            vec![
                vec![("Day", 1), ("Hour", 6), ("Minute", 0)],
                vec![("Day", 15), ("Hour", 6), ("Minute", 0)],
                vec![("Weekday", 1), ("Hour", 6), ("Minute", 0)],
            ]
        );
    }
}
