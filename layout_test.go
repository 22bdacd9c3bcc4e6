package aramaki_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The layout is the architecture: the domain imports nothing of ours, and
// the adapters around it do not import each other's technology.
func TestPackagesImportOnlyWhatTheirLayerMay(t *testing.T) {
	const mod = "github.com/aramaki/aramaki"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := map[string][]string{
		mod:                 {mod + "/"}, // the domain: nothing of ours
		mod + "/wire":       {mod + "/"},
		mod + "/store":      {mod + "/service", mod + "/api", mod + "/agentapi", mod + "/configrepo", mod + "/agent"},
		mod + "/configrepo": {mod + "/service", mod + "/api", mod + "/store", mod + "/agent"},
		mod + "/service":    {mod + "/store", mod + "/api", mod + "/agentapi", mod + "/configrepo", mod + "/wire", mod + "/agent"},
		mod + "/api":        {mod + "/store", mod + "/configrepo", mod + "/agent"},
		mod + "/agentapi":   {mod + "/store", mod + "/configrepo", mod + "/agent"},
		// The way between servers: an adapter like the API, over the service.
		mod + "/federation": {mod + "/store", mod + "/api", mod + "/agentapi", mod + "/configrepo", mod + "/agent", mod + "/web"},
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		rules, ok := forbidden[pkg]
		if !ok {
			continue
		}
		seen++
		for _, imp := range imports {
			for _, bad := range rules {
				if strings.HasPrefix(imp, bad) || (bad == mod+"/" && imp == mod) {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		}
	}
	if seen != len(forbidden) {
		t.Fatalf("checked %d packages, want %d: was one renamed?", seen, len(forbidden))
	}
}
