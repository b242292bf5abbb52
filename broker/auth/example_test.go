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
	fmt.Println(acl.Allow(bob, broker.Subscribe, "cmd/#")) // bob may only write there
	fmt.Println(acl.Allow(bob, broker.Publish, "cmd/valve/set"))
	// A dashboard's "#" is granted; bob receives only what he may read.
	fmt.Println(acl.AuthorizeSubscription(bob, "#") == broker.GrantSome)
	fmt.Println(acl.Allow(bob, broker.Read, "sensors/hall/temp"), acl.Allow(bob, broker.Read, "sensors/hall/rh"))
	// Output:
	// true
	// false
	// true
	// true
	// true false
}
