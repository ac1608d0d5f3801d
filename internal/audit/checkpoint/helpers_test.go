package checkpoint

import (
	"encoding/base64"
	"encoding/hex"
)

func hexOf(b []byte) string { return hex.EncodeToString(b) }
func b64Of(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
