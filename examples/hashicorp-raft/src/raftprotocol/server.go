// Package raftprotocol serves the pytest-consensus HTTP store protocol (v1.1) for a
// key-value store built on hashicorp/raft. Mount a Server around your *raft.Raft and your
// FSM: writes go through raft.Apply as protocol Commands, strong reads wait on a Barrier
// (the leader has applied everything committed before the read, and still leads a
// majority), stale reads are local, and status comes from one consistent read of the
// Raft state.
package raftprotocol

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Command is one write as the protocol sends it. Your FSM's Apply receives it encoded by
// Server.Encode (JSON by default) and returns a Result.
type Command struct {
	F         string  `json:"f"`
	Key       string  `json:"key"`
	Value     string  `json:"value,omitempty"`
	Expected  *string `json:"expected,omitempty"`
	RequestID *string `json:"request_id,omitempty"`
}

// Result is what an FSM's Apply returns for a Command.
type Result struct {
	Deleted bool    // delete: whether the key existed
	Swapped bool    // cas: whether it swapped
	Current *string // cas that did not swap: the value it saw (nil: absent)
}

// Store is what the server needs of the FSM besides raft.FSM: local reads of the applied
// state and a hash of it (equal exactly when the states are equal).
type Store interface {
	Get(key string) (value string, found bool)
	// Scan returns every key starting with prefix and its value, from this node's state.
	Scan(prefix string) map[string]string
	Digest() string
}

// Server answers the protocol for one node.
type Server struct {
	Raft         *raft.Raft
	Store        Store
	Name         string                        // this node's name, as the harness gave it
	Names        map[raft.ServerAddress]string // each member's Raft address -> its name
	Capabilities []string                      // what GET /v1/info lists
	Encode       func(Command) ([]byte, error) // nil: JSON
}

type request struct {
	F         string   `json:"f"`
	Key       string   `json:"key"`
	Value     *string  `json:"value"`
	Expected  *string  `json:"expected"`
	RequestID *string  `json:"request_id"`
	Level     *string  `json:"level"`
	Prefix    string   `json:"prefix"`
	Timeout   *float64 `json:"timeout"`
}

type failure struct {
	status int
	kind   string
	text   string
	leader *string
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/status":
		reply(w, http.StatusOK, s.status())
	case r.Method == http.MethodGet && r.URL.Path == "/v1/info":
		reply(w, http.StatusOK, map[string]interface{}{"protocol": "1.1", "capabilities": s.Capabilities})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/health":
		reply(w, http.StatusOK, map[string]bool{"ok": true})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/op":
		var req request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			s.fail(w, failure{http.StatusBadRequest, "rejected", "bad request: " + err.Error(), nil})
			return
		}
		body, fail := s.operation(req)
		if fail != nil {
			s.fail(w, *fail)
			return
		}
		reply(w, http.StatusOK, body)
	default:
		s.fail(w, failure{http.StatusNotFound, "rejected", "no route " + r.URL.Path, nil})
	}
}

func (s *Server) operation(req request) (map[string]interface{}, *failure) {
	timeout := 5 * time.Second
	if req.Timeout != nil && *req.Timeout > 0 {
		timeout = time.Duration(*req.Timeout * float64(time.Second))
	}
	level := "strong"
	if req.Level != nil {
		level = *req.Level
	}
	switch req.F {
	case "get":
		if level != "strong" && level != "stale" {
			return nil, &failure{http.StatusNotImplemented, "unsupported", "no read level " + level, nil}
		}
		if level == "strong" {
			if fail := s.barrier(timeout); fail != nil {
				return nil, fail
			}
		}
		if value, found := s.Store.Get(req.Key); found {
			return map[string]interface{}{"value": value}, nil
		}
		return map[string]interface{}{"value": nil}, nil
	case "scan":
		// Local, like a stale get: each member's own copy, never through the log.
		return map[string]interface{}{"items": s.Store.Scan(req.Prefix)}, nil
	case "put", "append", "delete", "cas":
		command := Command{F: req.F, Key: req.Key, Expected: req.Expected, RequestID: req.RequestID}
		if req.Value != nil {
			command.Value = *req.Value
		}
		result, fail := s.apply(command, timeout)
		if fail != nil {
			return nil, fail
		}
		switch req.F {
		case "delete":
			return map[string]interface{}{"deleted": result.Deleted}, nil
		case "cas":
			if result.Swapped {
				return map[string]interface{}{"swapped": true}, nil
			}
			return map[string]interface{}{"swapped": false, "value": result.Current}, nil
		}
		return map[string]interface{}{"ok": true}, nil
	}
	return nil, &failure{http.StatusNotImplemented, "unsupported", "no operation " + strconv.Quote(req.F), nil}
}

// barrier makes a strong read linearizable: only a leader that can still commit through
// a majority gets past it, and then everything committed before the read is applied.
func (s *Server) barrier(timeout time.Duration) *failure {
	if s.Raft.State() != raft.Leader {
		return s.notLeader()
	}
	return s.wait(s.Raft.Barrier(timeout), timeout)
}

func (s *Server) apply(command Command, timeout time.Duration) (Result, *failure) {
	if s.Raft.State() != raft.Leader {
		return Result{}, s.notLeader()
	}
	encode := s.Encode
	if encode == nil {
		encode = func(c Command) ([]byte, error) { return json.Marshal(c) }
	}
	entry, err := encode(command)
	if err != nil {
		return Result{}, &failure{http.StatusBadRequest, "rejected", err.Error(), nil}
	}
	future := s.Raft.Apply(entry, timeout)
	if fail := s.wait(future, timeout); fail != nil {
		return Result{}, fail
	}
	switch response := future.Response().(type) {
	case Result:
		return response, nil
	case error:
		return Result{}, &failure{http.StatusBadRequest, "rejected", response.Error(), nil}
	}
	return Result{}, &failure{http.StatusInternalServerError, "unknown", "the FSM returned no Result", nil}
}

// wait maps a future's outcome onto the protocol: not applied is definite, anything that
// may still commit is not.
func (s *Server) wait(future raft.Future, timeout time.Duration) *failure {
	done := make(chan error, 1)
	go func() { done <- future.Error() }()
	select {
	case err := <-done:
		switch {
		case err == nil:
			return nil
		case errors.Is(err, raft.ErrNotLeader):
			return s.notLeader()
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return &failure{http.StatusServiceUnavailable, "unavailable", err.Error(), nil}
		default: // leadership lost, shutdown: the entry may still commit
			return &failure{http.StatusInternalServerError, "unknown", err.Error(), nil}
		}
	case <-time.After(timeout):
		return &failure{http.StatusGatewayTimeout, "timeout", "no commit within " + timeout.String(), nil}
	}
}

func (s *Server) notLeader() *failure {
	return &failure{http.StatusConflict, "not-leader", "not the leader", s.leaderName()}
}

func (s *Server) leaderName() *string {
	if name, found := s.Names[s.Raft.Leader()]; found {
		return &name
	}
	return nil
}

// status reads the term around the role: a term that did not change while the role was
// read makes a pair that held at one moment (a torn pair looks like two leaders per term).
func (s *Server) status() map[string]interface{} {
	var stats map[string]string
	var state raft.RaftState
	for attempt := 0; attempt < 10; attempt++ {
		before := s.Raft.Stats()["term"]
		state = s.Raft.State()
		stats = s.Raft.Stats()
		if stats["term"] == before {
			break
		}
	}
	role := map[raft.RaftState]string{
		raft.Leader: "leader", raft.Follower: "follower", raft.Candidate: "candidate",
	}[state]
	if role == "" {
		role = "unknown"
	}
	return map[string]interface{}{
		"node":          s.Name,
		"role":          role,
		"term":          number(stats["term"]),
		"leader":        s.leaderName(),
		"commit_index":  number(stats["commit_index"]),
		"applied_index": number(stats["applied_index"]),
		"digest":        s.Store.Digest(),
	}
}

func number(text string) interface{} {
	value, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		return nil
	}
	return value
}

func (s *Server) fail(w http.ResponseWriter, f failure) {
	reply(w, f.status, map[string]interface{}{"error": f.kind, "message": f.text, "leader": f.leader})
}

func reply(w http.ResponseWriter, status int, body interface{}) {
	payload, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(payload)
}
