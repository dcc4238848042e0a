-- The example rows of the seed README (shared/seeds/pks-sip-proxy-README.fr.md), as SQL for
-- a database created by Kamailio's own *-create.sql scripts.
--
-- Two rows are corrected, because as published they cannot work in Kamailio 5.6:
--   * dialplan id 1: match_len 1 -> 0. match_len is the whole input length, so a rule with
--     match_len 1 never matches an 11-digit DID.
--   * dialplan id 2: match_exp '+33[1-9][0-9]+$' -> '^\+33[1-9][0-9]+$'. The original is not
--     a valid PCRE ("nothing to repeat" at offset 0): Kamailio refuses to load the table.
-- (In the README's dbtext form the backslash is doubled: '^\\+33...'.)

INSERT INTO address (id, grp, ip_addr, mask, port, tag) VALUES (1, 1, '10.1.1.1', 32, 5060, '456');
INSERT INTO address (id, grp, ip_addr, mask, port, tag) VALUES (2, 2, '8.1.2.2', 32, 5060, '20');

INSERT INTO dialplan (id, dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp, attrs)
VALUES (1, 1, 1, 1, '^3320202020[0-9]$', 0, '0', '0', '23');
INSERT INTO dialplan (id, dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp, attrs)
VALUES (2, 2, 1, 1, '^\+33[1-9][0-9]+$', 12, '0', '0', '21');
INSERT INTO dialplan (id, dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp, attrs)
VALUES (3, 2, 1, 1, '^\+33[1-9][0-9]+$', 12, '1', '1', '201');

INSERT INTO dispatcher (id, setid, destination, flags, priority, attrs, description)
VALUES (1, 23, 'sip:1.1.1.1:5060', 0, 0, 'prov=ovh', 'ovh');
INSERT INTO dispatcher (id, setid, destination, flags, priority, attrs, description)
VALUES (2, 21, 'sip:8.1.1.1:5060', 0, 0, 'socketname=ipbx;cust=celea', 'celea');
