package directory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// StaticSource reads the directory from a YAML file (see examples/directory.yaml): for
// demos, tests and small sites without Active Directory. The file is re-read at every
// sync, so edits show within one refresh.
type StaticSource struct{ Path string }

type staticFile struct {
	Users []struct {
		Login    string            `yaml:"login"`
		GUID     string            `yaml:"guid"`
		UPN      string            `yaml:"upn"`
		Mail     string            `yaml:"mail"`
		Aliases  []string          `yaml:"aliases"`
		Disabled bool              `yaml:"disabled"`
		Forward  string            `yaml:"forward"`
		Created  time.Time         `yaml:"created"`
		Attrs    map[string]string `yaml:"attrs"`
	} `yaml:"users"`
	Groups []struct {
		Name    string   `yaml:"name"`
		Mail    string   `yaml:"mail"`
		Aliases []string `yaml:"aliases"`
		Members []string `yaml:"members"` // logins, group names or contact names
	} `yaml:"groups"`
	Contacts []struct {
		Name    string   `yaml:"name"`
		Mail    string   `yaml:"mail"`
		Aliases []string `yaml:"aliases"`
		Target  string   `yaml:"target"`
	} `yaml:"contacts"`
}

// Name identifies the source.
func (s StaticSource) Name() string { return "static " + s.Path }

// Fetch reads and checks the file; an unknown key or member is an error.
func (s StaticSource) Fetch(context.Context) ([]*Object, error) {
	data, err := os.ReadFile(s.Path)
	if err != nil {
		return nil, fmt.Errorf("static directory: %w", err)
	}
	var f staticFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("static directory %s: %w", s.Path, err)
	}
	var objs []*Object
	byName := map[string]string{}
	add := func(o *Object, name string) error {
		if name == "" {
			return fmt.Errorf("static directory %s: a %s without a name or login", s.Path, o.Kind)
		}
		if _, dup := byName[name]; dup {
			return fmt.Errorf("static directory %s: %q is defined twice", s.Path, name)
		}
		byName[name] = o.DN
		objs = append(objs, o)
		return nil
	}
	for _, u := range f.Users {
		o := &Object{DN: "user:" + u.Login, Kind: User, GUID: u.GUID, Login: u.Login, UPN: u.UPN, Primary: u.Mail,
			Addresses: u.Aliases, Disabled: u.Disabled, Forward: u.Forward, Created: u.Created, Attrs: u.Attrs}
		if err := add(o, u.Login); err != nil {
			return nil, err
		}
	}
	for _, c := range f.Contacts {
		o := &Object{DN: "contact:" + c.Name, Kind: Contact, Name: c.Name, Primary: c.Mail, Addresses: c.Aliases, Target: c.Target}
		if err := add(o, c.Name); err != nil {
			return nil, err
		}
	}
	groups := map[string]*Object{}
	for _, g := range f.Groups {
		o := &Object{DN: "group:" + g.Name, Kind: Group, Name: g.Name, Primary: g.Mail, Addresses: g.Aliases}
		if err := add(o, g.Name); err != nil {
			return nil, err
		}
		groups[g.Name] = o
	}
	for _, g := range f.Groups {
		for _, m := range g.Members {
			dn, ok := byName[m]
			if !ok {
				return nil, fmt.Errorf("static directory %s: group %q has unknown member %q", s.Path, g.Name, m)
			}
			groups[g.Name].Members = append(groups[g.Name].Members, dn)
		}
	}
	return objs, nil
}
