//! Fix `cleanup_keeps_active_plan`. As it was, clean-up deletes every plan many generations
//! older than the one its enactor applied, whether or not an endpoint still uses it, and the
//! records of an endpoint that does go with it. With the fix, a plan an endpoint uses is kept.

use std::collections::BTreeMap;

use outage_lab_dynamodb_events::Generation;

/// What clean-up does with the old plans `old`, given the plan each endpoint uses: the plans to
/// delete, and the plans kept with the endpoints that use them.
pub(crate) fn sort(
    old: &[Generation],
    in_use: &BTreeMap<String, Generation>,
    on: bool,
) -> (Vec<Generation>, Vec<(Generation, Vec<String>)>) {
    let users = |g: Generation| -> Vec<String> {
        (in_use.iter())
            .filter(|(_, used)| **used == g)
            .map(|(name, _)| name.clone())
            .collect()
    };
    let mut delete = Vec::new();
    let mut keep = Vec::new();
    for &g in old {
        let used_by = users(g);
        if on && !used_by.is_empty() {
            keep.push((g, used_by));
        } else {
            delete.push(g);
        }
    }
    (delete, keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_fix_every_old_plan_goes_and_with_it_the_ones_in_use_stay() {
        let old = [Generation(1), Generation(2), Generation(3)];
        let in_use = BTreeMap::from([
            ("a.lab.internal.".to_owned(), Generation(2)),
            ("b.lab.internal.".to_owned(), Generation(9)),
        ]);
        assert_eq!(sort(&old, &in_use, false), (old.to_vec(), vec![]));
        assert_eq!(
            sort(&old, &in_use, true),
            (
                vec![Generation(1), Generation(3)],
                vec![(Generation(2), vec!["a.lab.internal.".to_owned()])]
            )
        );
    }
}
