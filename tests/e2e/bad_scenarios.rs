//! Bad scenarios: every file under fixtures/scenarios/bad/ is refused with exit 2 and a located
//! message before anything starts.
