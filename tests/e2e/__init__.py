"""End-to-end tests: the real proxy between SIPp peers (a package, so that its modules do not
clash with same-named helpers elsewhere under tests/)."""
