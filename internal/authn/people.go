package authn

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse-iot/gatehouse/internal/oauth"
	"github.com/gatehouse-iot/gatehouse/internal/registry"
	"github.com/gatehouse-iot/gatehouse/internal/store"
)

// personOrActor completes the identity of a person's token (gatehouse:kind
// user: the policies of the user, their groups and all users apply, with
// their relationships as policy variables) and of a token a gateway got for
// its child (the actor is exposed to policies as
// ${gatehouse:Token.Claims[gatehouse:actor]}).
func personOrActor(at *oauth.AccessToken, id *Identity) {
	if at.Kind == oauth.KindUser && at.ThingName == "" {
		id.UserName = at.Subject
		id.Principal = "user:" + at.Subject
		id.Subject = registry.Subject{UserName: at.Subject, Scopes: at.Scopes}
	}
	if at.Actor != "" {
		id.Token.Claims = map[string]string{"gatehouse:actor": at.Actor}
	}
}

// checkUser refuses a person whose account is gone or disabled.
func (a *Authenticator) checkUser(ctx context.Context, id *Identity) error {
	if id.UserName == "" {
		return nil
	}
	_, err := a.reg.ActiveUser(ctx, id.UserName)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: user %q no longer exists or is disabled", ErrNotAuthorized, id.UserName)
	}
	return err
}
