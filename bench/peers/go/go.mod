module hivepeer

go 1.19
