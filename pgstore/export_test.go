package pgstore

// MigrateTo migrates up to a given version, for tests that start from an older schema.
var MigrateTo = migrateTo
