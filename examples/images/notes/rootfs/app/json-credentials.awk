# Reads a request body that must be a flat JSON object and prints three lines: "ok", then its
# "username" and "password" members. On anything else it prints "error: <reason>" and exits 1.
# Other members are allowed and ignored. \uXXXX escapes are accepted for printable ASCII only,
# and no string may hold a control character, so each value fits on one output line.

function fail(why) {
	print "error: " why
	exit 1
}

function skip_space() {
	while (pos <= len && index(" \t\r\n", substr(text, pos, 1)) > 0) pos++
}

function hex_value(h,    i, v) {
	v = 0
	for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", tolower(substr(h, i, 1))) - 1
	return v
}

function read_string(    out, c, e, h, code) {
	pos++
	out = ""
	while (pos <= len) {
		c = substr(text, pos, 1)
		if (c == "\"") {
			pos++
			return out
		}
		if (index(controls, c) > 0) fail("control character in a string")
		if (c != "\\") {
			out = out c
			pos++
			continue
		}
		e = substr(text, pos + 1, 1)
		if (e == "\"" || e == "\\" || e == "/") {
			out = out e
			pos += 2
		} else if (e == "u") {
			h = substr(text, pos + 2, 4)
			if (h !~ /^[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]$/) fail("malformed unicode escape")
			code = hex_value(h)
			if (code < 32 || code > 126) fail("only printable ASCII may be written as a unicode escape")
			out = out sprintf("%c", code)
			pos += 6
		} else {
			fail("escaped control characters are not allowed")
		}
	}
	fail("unterminated string")
}

{ text = text (NR > 1 ? "\n" : "") $0 }

END {
	for (i = 1; i < 32; i++) controls = controls sprintf("%c", i)
	controls = controls sprintf("%c", 127)
	len = length(text)
	pos = 1
	skip_space()
	if (substr(text, pos, 1) != "{") fail("the body must be a JSON object")
	pos++
	skip_space()
	if (substr(text, pos, 1) == "}") {
		pos++
	} else {
		while (1) {
			skip_space()
			if (substr(text, pos, 1) != "\"") fail("expected a member name")
			key = read_string()
			skip_space()
			if (substr(text, pos, 1) != ":") fail("expected ':' after a member name")
			pos++
			skip_space()
			c = substr(text, pos, 1)
			if (c == "\"") {
				value[key] = read_string()
				is_string[key] = 1
			} else if (c == "{" || c == "[") {
				fail("nested values are not supported")
			} else {
				token = ""
				while (pos <= len && substr(text, pos, 1) ~ /[-+.0-9A-Za-z]/) {
					token = token substr(text, pos, 1)
					pos++
				}
				if (token !~ /^(true|false|null|-?[0-9][0-9.eE+-]*)$/) fail("malformed value")
				is_string[key] = 0
			}
			skip_space()
			c = substr(text, pos, 1)
			pos++
			if (c == "}") break
			if (c != ",") fail("expected ',' or '}'")
		}
	}
	skip_space()
	if (pos <= len) fail("unexpected text after the object")
	if (!is_string["username"]) fail("username must be a string")
	if (!is_string["password"]) fail("password must be a string")
	print "ok"
	print value["username"]
	print value["password"]
}
