// Package config loads postern's one YAML configuration file: strictly (an unknown key
// is an error with its line), reporting every error at once, with defaults kept in the
// binary and secrets read from *_file paths.
package config

// DefaultPath is where the packages install the configuration.
const DefaultPath = "/etc/postern/postern.yaml"

// Config is the whole configuration: shared top-level sections first, then one section
// per daemon.
type Config struct {
	// Domains are the accepted (internal) primary domains.
	Domains []string `yaml:"domains"`
	// DomainAliases maps an alias domain to its primary domain.
	DomainAliases map[string]string `yaml:"domain_aliases"`
	// RecipientDelimiter is a set of characters, as Postfix's recipient_delimiter.
	RecipientDelimiter string `yaml:"recipient_delimiter"`
	// InternalNetworks are where unauthenticated internal submissions come from.
	InternalNetworks Networks `yaml:"internal_networks"`
	// TrustedRelays are the gateways (PMG) that relay inbound mail.
	TrustedRelays Networks `yaml:"trusted_relays"`
	// AllowNonLoopback lets a daemon listen on an address other hosts can reach.
	AllowNonLoopback bool `yaml:"allow_non_loopback"`
	// StateDir holds the directory snapshot, the journal and ledgers.
	StateDir string `yaml:"state_dir"`

	Directory Directory `yaml:"directory"`
	Telemetry Telemetry `yaml:"telemetry"`
	Redis     Redis     `yaml:"redis"`
	Journal   Journal   `yaml:"journal"`

	Tcptable Tcptable `yaml:"tcptable"`
	Policyd  Policyd  `yaml:"policyd"`
	Milter   Milter   `yaml:"milter"`
	Welcome  Welcome  `yaml:"welcome"`

	LMTPShadow LMTPShadow `yaml:"lmtp_shadow"`
}

// Directory configures where users, groups and contacts come from.
type Directory struct {
	Backend  string   `yaml:"backend"`   // "ldap" or "static"
	Refresh  Duration `yaml:"refresh"`   // how often the snapshot is re-synchronised
	MaxStale Duration `yaml:"max_stale"` // how long a snapshot may serve while the source is unreachable
	// MaxDepth and MaxExpansion bound group expansion; over a limit is a temporary failure.
	MaxDepth     int    `yaml:"max_depth"`
	MaxExpansion int    `yaml:"max_expansion"`
	Static       Static `yaml:"static"`
	LDAP         LDAP   `yaml:"ldap"`
}

// Static is the file-backed directory for demos, tests and small sites.
type Static struct {
	File string `yaml:"file"`
}

// LDAP is the Active Directory (or plain LDAP) backend.
type LDAP struct {
	URLs             []string   `yaml:"urls"` // tried in order: failover
	StartTLS         bool       `yaml:"start_tls"`
	CAFile           string     `yaml:"ca_file"`
	ServerName       string     `yaml:"server_name"`
	AllowPlaintext   bool       `yaml:"allow_plaintext"`
	BindDN           string     `yaml:"bind_dn"`
	BindPasswordFile string     `yaml:"bind_password_file"`
	BindPassword     Secret     `yaml:"-"`
	BaseDN           string     `yaml:"base_dn"`
	Timeout          Duration   `yaml:"timeout"`   // deadline of every LDAP call
	PageSize         int        `yaml:"page_size"` // RFC 2696 page size; AD caps it at 1000
	UserFilter       string     `yaml:"user_filter"`
	GroupFilter      string     `yaml:"group_filter"`
	ContactFilter    string     `yaml:"contact_filter"`
	Attributes       Attributes `yaml:"attributes"`
}

// Attributes names the LDAP attributes postern reads; the defaults are Active Directory's.
type Attributes struct {
	Login          string   `yaml:"login"`
	UPN            string   `yaml:"upn"`
	Mail           string   `yaml:"mail"`
	ProxyAddresses string   `yaml:"proxy_addresses"`
	Member         string   `yaml:"member"`
	MemberOf       string   `yaml:"member_of"`
	AccountControl string   `yaml:"account_control"`
	TargetAddress  string   `yaml:"target_address"`
	Created        string   `yaml:"created"`
	GroupName      string   `yaml:"group_name"`
	Forward        string   `yaml:"forward"`
	GUID           string   `yaml:"guid"`   // a user's identity across renames; "" reads none
	Person         []string `yaml:"person"` // copied as-is for templates (displayName, title, …)
}

// Telemetry configures logs, /metrics, /healthz and /readyz.
type Telemetry struct {
	Listen    Listen `yaml:"listen"`
	LogFormat string `yaml:"log_format"` // auto | json | console
	LogLevel  string `yaml:"log_level"`  // debug | info | warn | error
}

// Defaults returns the configuration used for every key the file leaves out.
func Defaults() Config {
	return Config{
		RecipientDelimiter: "+",
		StateDir:           "/var/lib/postern",
		Directory: Directory{
			Backend:      "ldap",
			Refresh:      Duration(60e9),
			MaxStale:     Duration(24 * 3600e9),
			MaxDepth:     16,
			MaxExpansion: 5000,
			LDAP: LDAP{
				Timeout:       Duration(10e9),
				PageSize:      500,
				UserFilter:    "(&(objectCategory=person)(objectClass=user))",
				GroupFilter:   "(objectClass=group)",
				ContactFilter: "(objectClass=contact)",
				Attributes: Attributes{
					Login:          "sAMAccountName",
					UPN:            "userPrincipalName",
					Mail:           "mail",
					ProxyAddresses: "proxyAddresses",
					Member:         "member",
					MemberOf:       "memberOf",
					AccountControl: "userAccountControl",
					TargetAddress:  "targetAddress",
					Created:        "whenCreated",
					GroupName:      "sAMAccountName",
					Forward:        "altRecipient",
					GUID:           "objectGUID",
					Person: []string{"displayName", "givenName", "sn", "initials", "title", "department",
						"company", "telephoneNumber", "mobile", "facsimileTelephoneNumber",
						"physicalDeliveryOfficeName", "streetAddress", "l", "postalCode", "c", "co",
						"wWWHomePage", "employeeType", "employeeID", "manager", "description",
						"preferredLanguage"},
				},
			},
		},
		LMTPShadow: lmtpShadowDefaults(),
		Tcptable:   tcptableDefaults(),
		Telemetry: Telemetry{
			Listen:    Listen{Network: "tcp", Address: "127.0.0.1:9540"},
			LogFormat: "auto",
			LogLevel:  "info",
		},
		Redis:   redisDefaults(),
		Policyd: policydDefaults(),
	}
}
