package auth_test

import (
	"fmt"

	"github.com/edged/edged/broker"
	"github.com/edged/edged/broker/auth"
)

func ExampleACL_Allow() {
	acl, err := auth.LoadACL("testdata/acl")
	if err != nil {
		fmt.Println(err)
		return
	}
	bob := &broker.ClientInfo{ClientID: "bob-1", Username: "bob", HasUsername: true}
	fmt.Println(acl.Allow(bob, broker.Subscribe, "sensors/+/temp"))
	fmt.Println(acl.Allow(bob, broker.Subscribe, "sensors/#"))
	fmt.Println(acl.Allow(bob, broker.Publish, "cmd/valve/set"))
	// Output:
	// true
	// false
	// true
}
