package probes

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// acceptsJSON reports whether the request's Accept header prefers
// application/json to text: it names application/json (in any case) with
// a quality above zero and no lower than the quality of the most specific
// entry text/plain matches (text/plain, text/*, */*). Every Accept header
// line counts; an entry that does not parse, or whose q is not a number
// from 0 to 1, is ignored, as if absent. A header that never says "json",
// the kubelet's "*/*" among them, is text without being parsed.
func acceptsJSON(h http.Header) bool {
	lines := h.Values("Accept")
	mentioned := false
	for _, line := range lines {
		if containsFold(line, "json") {
			mentioned = true
			break
		}
	}
	if !mentioned {
		return false
	}
	jsonQ, textQ := -1.0, -1.0
	textRank := 0 // how specific the entry textQ came from is: 3 text/plain, 2 text/*, 1 */*
	for _, line := range lines {
		for entry := range strings.SplitSeq(line, ",") {
			mt, params, err := mime.ParseMediaType(entry)
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				q, err = strconv.ParseFloat(v, 64)
				if err != nil || !(q >= 0 && q <= 1) { // NaN is neither
					continue
				}
			}
			rank := 0
			switch mt {
			case "application/json":
				jsonQ = max(jsonQ, q)
				continue
			case "text/plain":
				rank = 3
			case "text/*":
				rank = 2
			case "*/*":
				rank = 1
			}
			switch {
			case rank > textRank:
				textRank, textQ = rank, q
			case rank == textRank && rank > 0:
				textQ = max(textQ, q)
			}
		}
	}
	return jsonQ > 0 && jsonQ >= textQ
}

// containsFold reports whether s contains substr, ignoring ASCII case.
func containsFold(s, substr string) bool {
	for i := 0; i+len(substr) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(substr)], substr) {
			return true
		}
	}
	return false
}
