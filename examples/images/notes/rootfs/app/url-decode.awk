# Decodes one URL component given as the input line: %XX escapes, and "+" as a space when run
# with -v form=1. Exits 1 if an escape is malformed or decodes to anything but printable ASCII;
# a name such as "a%2Fb" decodes to "a/b" and is then refused by the name check.
{
	out = ""
	n = length($0)
	for (i = 1; i <= n; i++) {
		c = substr($0, i, 1)
		if (c == "+" && form) {
			out = out " "
		} else if (c == "%") {
			h = tolower(substr($0, i + 1, 2))
			if (h !~ /^[0-9a-f][0-9a-f]$/) exit 1
			code = (index("0123456789abcdef", substr(h, 1, 1)) - 1) * 16 + index("0123456789abcdef", substr(h, 2, 1)) - 1
			if (code < 32 || code > 126) exit 1
			out = out sprintf("%c", code)
			i += 2
		} else {
			out = out c
		}
	}
	print out
}
